/* The diffusion kind: a residual U-Net trained by flow matching (rectified flow).
 *
 * Training: x_t = (1 - t) x0 + t * noise with t ~ U(0, 1) (or logit-normal, --time-dist),
 * and the network v(x_t, t) learns
 * the velocity noise - x0 by MSE. New images integrate dx/dt = v(x, t) from pure noise at
 * t = 1 to t = 0 (Euler or Heun).
 *
 * The U-Net, `blocks` resolutions with base << level channels:
 *   stem conv -> per level: ResBlock (skip kept), stride-2 conv down (not after the last)
 *   -> middle ResBlock -> per level, lowest first: concat skip, ResBlock, transposed conv up
 *   (k 4, stride 2; not after the top level) -> groupnorm -> SiLU -> conv to the image.
 * ResBlock(in -> out): groupnorm-SiLU-conv, groupnorm, + dense(SiLU(time embedding)) per
 * channel, SiLU-conv, + the input (a 1x1 conv when the channels change).
 * Time embedding: sinusoidal(t) -> dense(4 base) -> SiLU -> dense(4 base), plus a dense
 * projection of the image's augmentation parameters (zeros when sampling).
 * With spec.attention, a self-attention block follows the middle ResBlock:
 * h + proj(attention(qkv(groupnorm(h)))), qkv (C -> 3C) and proj (C -> C) 1x1 convs.
 *
 * Class conditioning (spec.cond_classes > 0): a learned embedding of the class (row K for
 * class K, row cond_classes for the "null" class) is added to the time embedding. Training
 * replaces a spec.label_dropout share of the labels by the null class, so the one network
 * learns both v(x, t, class) and v(x, t) and sampling can extrapolate from the second
 * towards the first (classifier-free guidance, flow_sample.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "models/kinds.h"

/* the batch's own random stream, apart from the augmentation's (seed, slot) draws */
#define FLOW_BATCH_STREAM 0x666c6f77ULL
/* label dropout's stream: a separate one, so unconditional batches stay as they were */
#define FLOW_LABEL_STREAM 0x6c61626cULL
/* the known part's stream (cond_mask): a separate one as well */
#define FLOW_MASK_STREAM 0x6d61736bULL

/* The partial masks a training image of the mask-conditioned denoiser gets, in percent of
 * those that get one: DC_MASK_MIX's draw without the full mask (which is the share
 * 1 - cond_mask, the images with nothing known). */
static const struct {
    dc_mask_kind kind;
    int percent;
} cond_masks[] = {{DC_MASK_RANDOM, 25}, {DC_MASK_BOTTOM, 15}, {DC_MASK_TOP, 15},
                  {DC_MASK_LEFT, 15},   {DC_MASK_RIGHT, 15},  {DC_MASK_BOX, 15}};

void dc_flow_cond_fill(const float *image, const float *mask, int channels, int size,
                       float *cond) {
    const size_t plane = (size_t)size * size;
    for (int c = 0; c < channels; c++)
        for (size_t q = 0; q < plane; q++)
            cond[c * plane + q] = mask && mask[q] <= 0.5f ? image[c * plane + q] : 0.0f;
    for (size_t q = 0; q < plane; q++)
        cond[channels * plane + q] = !mask || mask[q] > 0.5f ? 1.0f : 0.0f;
}

void dc_kind_diffusion_defaults(dc_model_spec *s) {
    s->mask = DC_MASK_NONE;
    s->noise = 0.0f;
    s->loss_full = 1;     /* the per-pixel weight the validation reads: all ones */
    s->cond_classes = -1; /* classes when the data has them (dc_model_spec_fit_data) */
    s->label_dropout = 0.1f;
    s->cond_mask = 0.5f;
}

dc_status dc_kind_diffusion_check(const dc_model_spec *s, dc_error *err) {
    const int down = 1 << (s->blocks - 1);
    if (s->size % down)
        return dc_set_error(err, DC_ERR_SHAPE,
                            "diffusion: --size %d must be divisible by 2^(blocks-1) = %d (%d "
                            "resolutions)",
                            s->size, down, s->blocks);
    if (s->base < 2)
        return dc_set_error(err, DC_ERR_ARG, "diffusion: --base %d: use at least 2", s->base);
    return DC_OK;
}

/* Group normalisation with up to 8 groups (the largest count <= 8 that divides ch). */
static int norm(dc_graph *g, int x, int ch, const char *name) {
    int groups = 8;
    while (ch % groups)
        groups--;
    dc_name(g, name);
    return dc_groupnorm(g, x, groups, 1e-5f);
}

static int res_block(dc_graph *g, const dc_model_spec *s, int x, int in_ch, int out_ch, int temb,
                     const char *prefix) {
    char name[64];
    snprintf(name, sizeof name, "%s_norm1", prefix);
    int h = dc_silu(g, norm(g, x, in_ch, name));
    snprintf(name, sizeof name, "%s_conv1", prefix);
    dc_name(g, name);
    h = dc_conv2d(g, h, out_ch, s->kernel, 1, s->kernel / 2);
    /* the time enters after the normalisation: added before it, a per-channel shift
     * would be removed again by the group's mean wherever a group holds few channels */
    snprintf(name, sizeof name, "%s_norm2", prefix);
    h = norm(g, h, out_ch, name);
    snprintf(name, sizeof name, "%s_time", prefix);
    dc_name(g, name);
    h = dc_silu(g, dc_add_channels(g, h, dc_dense(g, temb, out_ch)));
    snprintf(name, sizeof name, "%s_conv2", prefix);
    dc_name(g, name);
    h = dc_conv2d(g, h, out_ch, s->kernel, 1, s->kernel / 2);
    int skip = x;
    if (in_ch != out_ch) {
        snprintf(name, sizeof name, "%s_skip", prefix);
        dc_name(g, name);
        skip = dc_conv2d(g, x, out_ch, 1, 1, 0);
    }
    return dc_add(g, h, skip);
}

/* Single-head self-attention over the positions (the DDPM U-Net's block at its lowest
 * resolutions): every position sees the whole image, which the 3x3 convolutions of the
 * lowest level reach only over a few pixels. */
static int attention_block(dc_graph *g, int x, int ch, const char *prefix) {
    char name[64];
    snprintf(name, sizeof name, "%s_norm", prefix);
    int h = norm(g, x, ch, name);
    snprintf(name, sizeof name, "%s_qkv", prefix);
    dc_name(g, name);
    h = dc_conv2d(g, h, 3 * ch, 1, 1, 0);
    dc_name(g, prefix);
    h = dc_attention(g, h);
    snprintf(name, sizeof name, "%s_proj", prefix);
    dc_name(g, name);
    h = dc_conv2d(g, h, ch, 1, 1, 0);
    return dc_add(g, x, h);
}

void dc_kind_diffusion_build(dc_model *m) {
    const dc_model_spec *s = &m->spec;
    dc_graph *g = m->g;
    const int C = s->channels, S = s->size, L = s->blocks;
    m->x = dc_input(g, "x", C, S, S);
    m->time = dc_input(g, "t", 1, 1, 1);
    m->target = dc_input(g, "target", C, S, S);
    m->weight = dc_input(g, "weight", C, S, S);

    const int tdim = 4 * s->base, sin_dim = s->base + (s->base & 1);
    int temb = dc_time_embedding(g, m->time, sin_dim, 1000.0f, 10000.0f);
    dc_name(g, "time_fc1");
    temb = dc_silu(g, dc_dense(g, temb, tdim));
    dc_name(g, "time_fc2");
    temb = dc_dense(g, temb, tdim);
    /* Non-leaking augmentation (Karras et al. 2022): the network is told how each training
     * image was flipped, shifted, scaled and rotated, and sampling asks for none (zeros),
     * so the augmentation enlarges the data without showing up in the samples. */
    m->aug = dc_input(g, "aug", DC_AUGMENT_PARAMS, 1, 1);
    dc_name(g, "aug_fc");
    temb = dc_add(g, temb, dc_dense(g, m->aug, tdim));
    if (s->cond_classes > 0) {
        /* the class input carries the null class (row cond_classes) when dropped */
        m->labels = dc_input_int(g, "class");
        dc_name(g, "class_embed");
        temb = dc_add(g, temb, dc_embedding(g, m->labels, s->cond_classes + 1, tdim, 0.1f));
    }
    /* every ResBlock projects SiLU(embedding) to its channels */
    temb = dc_silu(g, temb);

    /* The mask-conditioned denoiser: the known pixels and the mask enter beside the noised
     * image, so completion is learned (the share cond_mask of the training images has a
     * random part known) rather than only imposed while sampling. */
    int stem_in = m->x;
    if (s->cond_mask > 0.0f) {
        m->cond = dc_input(g, "cond", C + 1, S, S);
        stem_in = dc_concat(g, m->x, m->cond);
    }
    char name[64];
    dc_name(g, "stem");
    int h = dc_conv2d(g, stem_in, s->base, s->kernel, 1, s->kernel / 2);
    int skips[8], ch = s->base;
    for (int l = 0; l < L; l++) {
        const int out_ch = s->base << l;
        snprintf(name, sizeof name, "down%d", l + 1);
        h = res_block(g, s, h, ch, out_ch, temb, name);
        ch = out_ch;
        skips[l] = h;
        if (l + 1 < L) {
            snprintf(name, sizeof name, "down%d_pool", l + 1);
            dc_name(g, name);
            h = dc_conv2d(g, h, ch, 3, 2, 1);
        }
    }
    h = res_block(g, s, h, ch, ch, temb, "mid");
    if (s->attention) h = attention_block(g, h, ch, "mid_attn");
    for (int l = L - 1; l >= 0; l--) {
        const int out_ch = s->base << l;
        h = dc_concat(g, h, skips[l]);
        snprintf(name, sizeof name, "up%d", l + 1);
        h = res_block(g, s, h, ch + out_ch, out_ch, temb, name);
        ch = out_ch;
        if (l > 0) {
            /* the project's namesake: a transposed conv doubles the side, to the next
             * level's channels */
            snprintf(name, sizeof name, "up%d_deconv", l + 1);
            dc_name(g, name);
            h = dc_conv_transpose2d(g, h, s->base << (l - 1), 4, 2, 1, 0);
            ch = s->base << (l - 1);
        }
    }
    h = dc_silu(g, norm(g, h, ch, "out_norm"));
    dc_name(g, "out");
    m->out = dc_conv2d(g, h, C, s->kernel, 1, s->kernel / 2);
    dc_name(g, "loss");
    m->recon = dc_mse_loss(g, m->out, m->target, -1);
    m->loss = m->recon;
}

/* The augmented clean images in b->target become the noised inputs and their velocities:
 * per image t ~ U(0, 1) and noise ~ N(0, I) from (seed, slot), so a batch depends on the
 * step's seed only and a resumed run draws the same. With classes, each label becomes the
 * null class with probability label_dropout, drawn from (seed, slot) as well. */
dc_status dc_kind_diffusion_fill_batch(const dc_model *m, dc_batch *b, uint64_t seed,
                                       int first_slot, dc_error *err) {
    (void)err;
    const size_t numel = b->image_numel;
    for (int slot = 0; slot < b->n; slot++) {
        dc_rng rng;
        dc_rng_seed(&rng, dc_seed_mix(dc_seed_mix(seed, (uint64_t)(first_slot + slot)),
                                      FLOW_BATCH_STREAM));
        /* logit-normal (Esser et al. 2024): t = sigmoid(n), n ~ N(0, 1) */
        const float t = m->spec.time_dist == 1 ? 1.0f / (1.0f + expf(-dc_rng_normal(&rng)))
                                               : dc_rng_uniform(&rng);
        float *x = b->x + (size_t)slot * numel, *v = b->target + (size_t)slot * numel;
        float *w = b->weight + (size_t)slot * numel;
        if (m->cond >= 0) {
            /* the known part, from the clean image (v holds it until the loop below) */
            const size_t plane = (size_t)m->spec.size * m->spec.size;
            float *mask = b->mask + (size_t)slot * plane;
            dc_rng mrng;
            dc_rng_seed(&mrng, dc_seed_mix(dc_seed_mix(seed, (uint64_t)(first_slot + slot)),
                                           FLOW_MASK_STREAM));
            const int known = dc_rng_uniform(&mrng) < m->spec.cond_mask;
            int draw = (int)dc_rng_below(&mrng, 100), k = 0;
            while (draw >= cond_masks[k].percent) draw -= cond_masks[k++].percent;
            dc_mask_make(known ? cond_masks[k].kind : DC_MASK_FULL, m->spec.size, m->spec.size,
                         &mrng, mask);
            dc_flow_cond_fill(v, mask, m->spec.channels, m->spec.size,
                              b->cond + (size_t)slot * (numel + plane));
        }
        for (size_t p = 0; p < numel; p++) {
            const float noise = dc_rng_normal(&rng), x0 = v[p];
            x[p] = (1.0f - t) * x0 + t * noise;
            v[p] = noise - x0;
            w[p] = 1.0f;
        }
        b->t[slot] = t;
        if (m->spec.cond_classes > 0) {
            /* keyed by the global slot, as every draw of the batch (a rank's slice draws
             * what one process draws for those slots) */
            dc_rng_seed(&rng, dc_seed_mix(dc_seed_mix(seed, (uint64_t)(first_slot + slot)),
                                          FLOW_LABEL_STREAM));
            if (dc_rng_uniform(&rng) < m->spec.label_dropout)
                b->labels[slot] = m->spec.cond_classes;
        }
    }
    return DC_OK;
}

