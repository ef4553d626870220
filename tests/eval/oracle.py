"""Reference values for tests/test_eval.c, computed independently with numpy/scipy.

Usage: oracle.py DIR. DIR/manifest.txt lists the inputs the test wrote ("name rows cols
dtype", dtype f4 or i4, raw little-endian in DIR/name.bin); every result is written as
raw float64 to DIR/name.out. Exits 3 when numpy or scipy is missing.
"""
import os
import sys

try:
    import numpy as np
    import scipy.linalg
    import scipy.spatial.distance
except ImportError as e:
    print(e)
    sys.exit(3)

d = sys.argv[1]
data = {}
with open(os.path.join(d, "manifest.txt")) as f:
    for line in f:
        name, rows, cols, dtype = line.split()
        a = np.fromfile(os.path.join(d, name + ".bin"), dtype="<" + dtype)
        data[name] = a.reshape(int(rows), int(cols))


def save(name, values):
    np.asarray(values, dtype="<f8").ravel().tofile(os.path.join(d, name + ".out"))


def f64(name):
    return data[name].astype(np.float64)


# ---- Frechet distance: the scipy.linalg.sqrtm formula (as pytorch-fid), and the
# eigenvalues of S1 S2 from a general (non-symmetric) eigen-solver
def frechet(a, b):
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    trace_term = float(np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    ev = scipy.linalg.eigvals(s1 @ s2).real
    trace_eig = float(np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(ev, 0, None))))
    return [mean_term + trace_term, mean_term, trace_term, mean_term + trace_eig], mu1, s1


for case in ("fd", "fdr"):
    values, mu, cov = frechet(f64(case + "_a"), f64(case + "_b"))
    save(case, values)
    save(case + "_mean", mu)
    save(case + "_cov", cov)


# ---- k-NN manifolds (Kynkaanniemi et al. 2019): radius = distance to the k-th nearest
# other sample; inside when distance <= some radius
def kth_radius(x, k):
    dist = scipy.spatial.distance.cdist(x, x)
    return np.partition(dist, k, axis=1)[:, k]  # index 0 is the sample itself


def precision_recall(real, fake, k):
    rr, rf = kth_radius(real, k), kth_radius(fake, k)
    cross = scipy.spatial.distance.cdist(fake, real)  # fake x real
    precision = np.mean(np.any(cross <= rr[None, :], axis=1))
    recall = np.mean(np.any(cross.T <= rf[None, :], axis=1))
    return [precision, recall]


real, fake = f64("pr_real"), f64("pr_fake")
save("pr_k3", precision_recall(real, fake, 3))
save("pr_k5", precision_recall(real, fake, 5))
save("prl_k3", precision_recall(f64("prl_real"), f64("prl_fake"), 3))
cross = scipy.spatial.distance.cdist(fake, real)
order = np.argsort(cross, axis=1, kind="stable")[:, :3]
save("knn_d", np.take_along_axis(cross, order, axis=1))
save("knn_i", order)
self_dist = scipy.spatial.distance.cdist(real, real)
np.fill_diagonal(self_dist, np.inf)
save("knn_self", np.sort(self_dist, axis=1)[:, :3])

# ---- class histogram
labels = data["labels"].ravel()
counts = np.bincount(labels, minlength=10)
p = counts[counts > 0] / labels.size
save("hist", [-np.sum(p * np.log2(p)), counts.max() / labels.size, int(np.argmax(counts))])
save("hist_counts", counts)


# ---- memorisation / novelty (RMS distances)
def memorisation(samples, train, leave_one_out):
    numel = train.shape[1]
    dist = scipy.spatial.distance.cdist(samples, train) / np.sqrt(numel)
    tt = scipy.spatial.distance.cdist(train, train) / np.sqrt(numel)
    np.fill_diagonal(tt, np.inf)
    if leave_one_out:
        dist = tt
    threshold = tt.min()
    srt = np.sort(dist, axis=1)
    nearest, second = srt[:, 0], srt[:, 1]
    ratio = np.where(second > 0, nearest / np.where(second > 0, second, 1), 0)
    figures = [threshold, np.mean(nearest < threshold), ratio.mean(), nearest.mean(),
               nearest.min(), np.sqrt(np.mean(nearest ** 2))]
    return figures, nearest, second, np.argmin(dist, axis=1)


figures, nearest, second, index = memorisation(f64("mem_samples"), f64("mem_train"), False)
save("mem", figures)
save("mem_nearest", nearest)
save("mem_second", second)
save("mem_index", index)
save("memt", memorisation(f64("mem_train"), f64("mem_train"), True)[0])

# ---- silhouette figures: images [n, c, h, w]
n_sil = 3
sil = data["sil"].reshape(n_sil, 2, 20, 24).astype(np.float64)
mid_grey = np.mean(np.abs(sil) < 0.5)
clipped = np.clip(sil, -1, 1)
neg = sil < 0
pairs = []
for a_neg, b_neg, a, b in ((neg[..., :, :-1], neg[..., :, 1:], clipped[..., :, :-1], clipped[..., :, 1:]),
                           (neg[..., :-1, :], neg[..., 1:, :], clipped[..., :-1, :], clipped[..., 1:, :])):
    cross_mask = a_neg != b_neg
    pairs.append(np.abs(a - b)[cross_mask] / 2)
pairs = np.concatenate(pairs)
save("sil", [mid_grey, pairs.mean() if pairs.size else 0.0, pairs.size / n_sil])
