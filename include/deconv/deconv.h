/* deconv — public API: status and errors, PRNG, backends, parameters, graph, optimizers.
 *
 * Ownership: dc_x_create(..., dc_x **out) pairs with a NULL-safe dc_x_free(x).
 * Errors: every call returns dc_status and leaves a message in the object's dc_error
 * (or in the dc_error *err argument for free functions). No globals, no thread-locals.
 */
#ifndef DECONV_H
#define DECONV_H

#include <stddef.h>
#include <stdint.h>

/* The public interface: everything declared between DC_API_BEGIN and DC_API_END (every
 * public header wraps its declarations in them) keeps default visibility, so libdeconv.so
 * exports it, while the library is compiled with -fvisibility=hidden and keeps its internal
 * helpers to itself. */
#if defined(__GNUC__)
#define DC_API_BEGIN _Pragma("GCC visibility push(default)")
#define DC_API_END _Pragma("GCC visibility pop")
#else
#define DC_API_BEGIN
#define DC_API_END
#endif

#ifdef __cplusplus
extern "C" {
#endif
DC_API_BEGIN

#define DECONV_VERSION "0.1.0"

/* ------------------------------------------------------------------ status */
typedef enum dc_status {
    DC_OK = 0,
    DC_ERR_ARG,         /* NULL or out-of-range argument */
    DC_ERR_IO,          /* file could not be read or written */
    DC_ERR_SHAPE,       /* tensor shapes do not fit */
    DC_ERR_OOM,         /* allocation failed */
    DC_ERR_CL,          /* OpenCL error */
    DC_ERR_FORMAT,      /* malformed file contents */
    DC_ERR_STATE,       /* call made in the wrong order */
    DC_ERR_UNSUPPORTED, /* feature not available in this build / on this device */
    DC_ERR_NOT_FOUND,   /* named thing does not exist */
    DC_ERR_INTERRUPTED, /* stopped by a signal; state saved */
    DC_ERR_NUMERIC,     /* NaN / Inf where a finite value is required */
} dc_status;

const char *dc_status_name(dc_status s);

typedef struct dc_error {
    dc_status status;
    char msg[1024];
} dc_error;

/* Record an error (err may be NULL) and return s. */
dc_status dc_set_error(dc_error *err, dc_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Prefix an existing message: "prefix: old message". */
dc_status dc_wrap_error(dc_error *err, dc_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void dc_error_clear(dc_error *err);

/* --------------------------------------------------------------------- PRNG
 * Host PRNG: xoshiro256** seeded by splitmix64. Used for init, shuffling,
 * augmentation and masks, always through an explicit dc_rng (no global state).
 * Device-side randomness (dropout, latent noise) uses the counter-based
 * dc_hash_uniform(seed, index), which every backend implements identically. */
typedef struct dc_rng {
    uint64_t s[4];
} dc_rng;

void dc_rng_seed(dc_rng *r, uint64_t seed);
uint64_t dc_rng_next(dc_rng *r);
float dc_rng_uniform(dc_rng *r); /* [0, 1) with 24 random bits */
float dc_rng_normal(dc_rng *r);  /* N(0,1), Box-Muller */
uint32_t dc_rng_below(dc_rng *r, uint32_t n); /* unbiased in [0, n) */
uint64_t dc_seed_mix(uint64_t a, uint64_t b);  /* derive a seed from two values */

static inline uint32_t dc_hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}
static inline uint32_t dc_hash_bits(uint64_t seed, uint32_t i) {
    return dc_hash32(dc_hash32(i ^ (uint32_t)seed) + (uint32_t)(seed >> 32));
}
/* Uniform in [0,1) from (seed, i): 24 bits. */
static inline float dc_hash_uniform(uint64_t seed, uint32_t i) {
    return (float)(dc_hash_bits(seed, i) >> 8) * (1.0f / 16777216.0f);
}

/* N(0,1) from (seed, i): Box-Muller on the uniforms at counters 2i and 2i+1. */
static inline void dc_hash_uniform_pair(uint64_t seed, uint32_t i, float *u1, float *u2) {
    *u1 = ((float)(dc_hash_bits(seed, 2u * i) >> 8) + 0.5f) * (1.0f / 16777216.0f);
    *u2 = (float)(dc_hash_bits(seed, 2u * i + 1u) >> 8) * (1.0f / 16777216.0f);
}

/* ------------------------------------------------------------------ backend */
typedef struct dc_backend dc_backend; /* see deconv/backend.h */

dc_status dc_backend_create_cpu(int threads, dc_backend **out, dc_error *err);
/* platform/device < 0: first GPU, else first device. */
dc_status dc_backend_create_opencl(int platform, int device, dc_backend **out, dc_error *err);
/* spec: "cpu", "opencl", "opencl:P:D", "auto". Prints one line saying what it picked
 * when verbose. */
dc_status dc_backend_create_from_spec(const char *spec, int verbose, dc_backend **out,
                                      dc_error *err);
void dc_backend_free(dc_backend *be);
/* CPU backend: compute with this many threads (other backends ignore it). */
dc_status dc_backend_set_threads(dc_backend *be, int threads);
const char *dc_backend_name(const dc_backend *be);
const char *dc_backend_device(const dc_backend *be);
const dc_error *dc_backend_error(const dc_backend *be);
/* Lists OpenCL platforms and devices to `out` (FILE*). */
dc_status dc_opencl_list_devices(void *file, dc_error *err);
/* The --device auto policy: 1 with *platform, *device set when an OpenCL GPU or accelerator
 * exists (the first one), else 0 (the CPU backend). `why` gets one sentence naming what was
 * found. */
int dc_backend_auto_pick(int *platform, int *device, char *why, size_t cap);
int dc_opencl_available(void);

/* ------------------------------------------------------------------- tensor */
#define DC_MAX_DIMS 4
typedef struct dc_buffer dc_buffer;
typedef struct dc_tensor {
    dc_buffer *buf;
    size_t off; /* element offset into buf */
    int ndim;
    int shape[DC_MAX_DIMS];
} dc_tensor;

size_t dc_shape_numel(int ndim, const int *shape);
static inline size_t dc_tensor_numel(const dc_tensor *t) { return dc_shape_numel(t->ndim, t->shape); }
/* "[64, 32, 16, 16]" into buf. Returns buf. */
const char *dc_shape_str(int ndim, const int *shape, char *buf, size_t cap);

/* --------------------------------------------------------------- parameters
 * A named set of trainable tensors (and non-trainable state such as batch-norm
 * running statistics), allocated in one arena on the backend with gradients and
 * optimizer moments in parallel arenas. Several graphs (different batch sizes)
 * can share one dc_params. */
typedef enum dc_init {
    DC_INIT_ZERO = 0,
    DC_INIT_ONE,
    DC_INIT_HE,      /* N(0, 2/fan_in)          (Kaiming normal, ReLU gain) */
    DC_INIT_XAVIER,  /* U(+-sqrt(6/(fan_in+fan_out))) */
    DC_INIT_NORMAL,  /* N(0, init_std^2) */
} dc_init;

typedef struct dc_param {
    char name[64];
    int ndim;
    int shape[DC_MAX_DIMS];
    size_t numel;
    size_t off;        /* offset in the arenas */
    dc_init init;
    int fan_in, fan_out;
    float init_std;
    int trainable;     /* 0: state (running stats), not updated by the optimizer */
    int decay;         /* 1: weight decay applies */
    dc_tensor value, grad;
} dc_param;

typedef struct dc_params dc_params;
dc_status dc_params_create(dc_backend *be, dc_params **out);
void dc_params_free(dc_params *p);
const dc_error *dc_params_error(const dc_params *p);
/* Find or declare. Declaring after allocation fails; a shape mismatch names both shapes. */
dc_status dc_params_declare(dc_params *p, const char *name, int ndim, const int *shape,
                            dc_init init, int fan_in, int fan_out, int trainable, int *index);
int dc_params_find(const dc_params *p, const char *name); /* -1 if absent */
int dc_params_count(const dc_params *p);
dc_param *dc_params_get(dc_params *p, int i);
size_t dc_params_total(const dc_params *p); /* elements */
int dc_params_allocated(const dc_params *p);
dc_status dc_params_allocate(dc_params *p);
/* Initialize all values with rng (He/Xavier/...), zero grads and moments. */
dc_status dc_params_init(dc_params *p, dc_rng *rng);
dc_status dc_params_zero_grad(dc_params *p);
dc_status dc_params_read(dc_params *p, int i, float *host);
dc_status dc_params_write(dc_params *p, int i, const float *host);
dc_backend *dc_params_backend(dc_params *p);
/* EMA weights: an exponential moving average of the values, kept by an optimizer whose
 * config has ema_decay > 0 and saved in checkpoints as "ema.<name>". has_ema: whether the
 * parameters hold one; swap_ema exchanges the values and the average (calling it again
 * restores them), e.g. to sample with the averaged weights during training. */
int dc_params_has_ema(const dc_params *p);
dc_status dc_params_swap_ema(dc_params *p);
/* -------------------------------------------------------------------- graph
 * Builder: node functions return a node id (>= 0) or -1. Errors are sticky: once a
 * builder call fails, later calls return -1 and dc_graph_finalize() returns the first
 * error, whose message names the op, the node and the shapes at fault.
 * Shapes: every node's output has a leading batch dimension N (the graph's batch),
 * except loss nodes, which are scalars [1]. */
typedef struct dc_graph dc_graph;

typedef enum dc_relu_mode {
    DC_RELU_NORMAL = 0, /* true gradient */
    DC_RELU_GUIDED,     /* Springenberg et al.: pass where input > 0 and gradient > 0 */
    DC_RELU_DECONVNET,  /* Zeiler & Fergus: pass where gradient > 0 */
} dc_relu_mode;

typedef enum dc_mse_reduce { DC_MSE_MEAN = 0 } dc_mse_reduce;

dc_status dc_graph_create(dc_params *params, int batch, dc_graph **out);
void dc_graph_free(dc_graph *g);
const dc_error *dc_graph_error(const dc_graph *g);
dc_backend *dc_graph_backend(dc_graph *g);
dc_params *dc_graph_params(dc_graph *g);
int dc_graph_batch(const dc_graph *g);

/* Name for the next node created (its parameters become NAME.weight, NAME.bias, ...).
 * Without it nodes are named op1, op2, ... per op kind. */
void dc_name(dc_graph *g, const char *name);
/* Weight sharing inside one graph (an unrolled network: the same layers applied twice).
 * While a scope is set, nodes are named SCOPE/NAME but their parameters are NAME.weight,
 * NAME.bias, ...: the very tensors of the node NAME built outside the scope (same shapes
 * required), whose gradients then sum both uses. Name every node with parameters that is
 * to share them. NULL or "" ends the scope. Errors (a name with '/', over 15 characters)
 * fail the graph like a builder's. */
dc_status dc_graph_share_scope(dc_graph *g, const char *scope);

/* Inputs: float data [N, c, h, w] (h = w = 1 for vectors); int inputs hold labels or
 * row indices [N]. */
int dc_input(dc_graph *g, const char *name, int c, int h, int w);
int dc_input_int(dc_graph *g, const char *name);

int dc_conv2d(dc_graph *g, int x, int out_ch, int k, int stride, int pad);
/* bias = 0: no bias (a conv followed by batch norm, whose mean subtraction cancels it). */
int dc_conv2d_ex(dc_graph *g, int x, int out_ch, int k, int stride, int pad, int bias);
/* PyTorch ConvTranspose2d semantics: out = (in-1)*stride - 2*pad + k + out_pad. */
int dc_conv_transpose2d(dc_graph *g, int x, int out_ch, int k, int stride, int pad, int out_pad);
/* Weight tying: a transposed conv that uses the weight [in=x.c, out, k, k] of an existing
 * conv node (whose weight is [out=x.c, in=out, k, k]); only the bias is new. */
int dc_conv_transpose2d_tied(dc_graph *g, int x, int conv_node, int stride, int pad, int out_pad);
/* The same, tied by parameter name (e.g. "enc1.weight"), for graphs without the encoder. */
int dc_conv_transpose2d_tied_param(dc_graph *g, int x, const char *weight_name, int stride,
                                   int pad, int out_pad);
int dc_maxpool2d(dc_graph *g, int x, int k, int stride, int pad);
/* Max-unpool with the switches of an earlier maxpool node. */
int dc_maxunpool2d(dc_graph *g, int x, int pool_node);
int dc_relu(dc_graph *g, int x);
int dc_leaky_relu(dc_graph *g, int x, float slope);
int dc_tanh(dc_graph *g, int x);
int dc_sigmoid(dc_graph *g, int x);
/* Dense over the flattened non-batch dims: [N, in] -> [N, out, 1, 1]. */
int dc_dense(dc_graph *g, int x, int out_features);
int dc_reshape(dc_graph *g, int x, int c, int h, int w);
int dc_flatten(dc_graph *g, int x);
int dc_add(dc_graph *g, int a, int b);
int dc_mul(dc_graph *g, int a, int b);
/* y = mask > 0.5 ? a : b per pixel: a and b [N, C, H, W], mask [N, 1, H, W] (one plane per
 * image, shared by the channels). Gradients flow to a and b, none to the mask. */
int dc_where(dc_graph *g, int mask, int a, int b);
int dc_global_avgpool(dc_graph *g, int x);
int dc_batchnorm2d(dc_graph *g, int x, float momentum, float eps);
int dc_dropout(dc_graph *g, int x, float p);
/* x + std * N(0,1) in training mode (and in eval mode when `always`); std settable. */
int dc_gaussian_noise(dc_graph *g, int x, float std, int always);
/* z = mu + exp(logvar/2) * eps (training or `always`), z = mu otherwise. */
int dc_reparameterize(dc_graph *g, int mu, int logvar, int always);
/* The same in training; in eval mode z = std * N(0, 1), a draw from the prior that ignores
 * mu and logvar (a conditional VAE's generation); std settable with dc_graph_set_noise_std. */
int dc_reparameterize_prior(dc_graph *g, int mu, int logvar, float std);
/* Learned table [rows, dim]; y[n] = table[idx[n]] as [N, dim, 1, 1]. */
int dc_embedding(dc_graph *g, int idx_input, int rows, int dim, float init_std);
int dc_softmax(dc_graph *g, int logits);
/* Losses (scalar nodes). weight < 0: none; otherwise a float node of pred's shape. */
int dc_mse_loss(dc_graph *g, int pred, int target, int weight);
/* Binary cross-entropy of tanh(x) against targets in [-1, 1] (mapped to [0, 1]), read from
 * the pre-activation x so it is stable for any x: per pixel -[y log p + (1-y) log(1-p)] with
 * p = (1 + tanh x)/2, y = (1 + t)/2, weighted and averaged like dc_mse_loss. */
int dc_bce_tanh_loss(dc_graph *g, int x, int target, int weight);
int dc_softmax_xent_loss(dc_graph *g, int logits, int labels);
int dc_gaussian_kl_loss(dc_graph *g, int mu, int logvar);
/* total = sum_i coef_i * loss_i : a scalar node (for VAE = recon + beta*KL). */
int dc_loss_sum(dc_graph *g, int a, float ca, int b, float cb);

/* U-Net ops (diffusion models). */
/* x * sigmoid(x). Never fused into a convolution or norm (dc_graph_set_fusion). */
int dc_silu(dc_graph *g, int x);
/* [N, Ca, H, W] and [N, Cb, H, W] -> [N, Ca + Cb, H, W] (a U-Net skip connection). */
int dc_concat(dc_graph *g, int a, int b);
/* Group normalisation (Wu & He 2018; PyTorch GroupNorm): the C channels in `groups` runs of
 * C/groups consecutive channels, each (image, group) normalised by its own mean and biased
 * variance, then NAME.weight[c] * xhat + NAME.bias[c]. The same in training and eval. */
int dc_groupnorm(dc_graph *g, int x, int groups, float eps);
/* y[n, c, h, w] = x[n, c, h, w] + e[n, c]: e holds one value per image and channel of x
 * (e.g. a dense layer's [N, C, 1, 1] output: a time or class embedding). */
int dc_add_channels(dc_graph *g, int x, int e);
/* Nearest-neighbour upsampling by an integer factor: [N, C, H, W] -> [N, C, H*f, W*f]. */
int dc_upsample_nearest(dc_graph *g, int x, int factor);
/* Sinusoidal embedding of one float per image (t: a node of N values, e.g. an input of
 * shape [N, 1, 1, 1]) -> [N, dim, 1, 1], dim even, half = dim/2:
 * [sin(scale*t*f_k), cos(scale*t*f_k)], f_k = max_period^(-k/half), k < half (the
 * transformer / DDPM embedding; scale 1000 for t in [0, 1]). No gradient flows to t. */
int dc_time_embedding(dc_graph *g, int t, int dim, float scale, float max_period);
/* Single-head self-attention over the H*W positions of each image (Vaswani et al. 2017):
 * qkv [N, 3C, H, W] holds the queries (channels 0..C-1), keys (C..2C-1) and values
 * (2C..3C-1); out[:, p] = sum_j softmax_j(q_p . k_j / sqrt(C)) v_j, [N, C, H, W]. Keeps the
 * N x HW x HW probabilities for the backward. */
int dc_attention(dc_graph *g, int qkv);

/* Allocate activations and gradients; params are allocated if not yet. */
dc_status dc_graph_finalize(dc_graph *g);
/* Before dc_graph_finalize: let a ReLU / leaky ReLU (slope >= 0) that is the only consumer
 * of a conv2d, conv_transpose2d or batchnorm2d run inside that node, on backends with the
 * fused primitives (the CPU backend; elsewhere nothing changes). Values and gradients of
 * every other node are unchanged, but the fused node's own output and gradient then hold
 * the activated values and their gradient, and a fused batch norm has no eval-mode
 * backward: turn it on for training graphs, not for graphs whose conv outputs are read or
 * explained. Off by default. */
dc_status dc_graph_set_fusion(dc_graph *g, int on);
/* One line per node: "  3 conv2d      enc1   [64, 32, 64, 64]  params 320" to file. */
void dc_graph_print_summary(const dc_graph *g, void *file);
int dc_graph_node_count(const dc_graph *g);
int dc_graph_find(const dc_graph *g, const char *name); /* -1 if absent */
const char *dc_graph_node_name(const dc_graph *g, int node);
const char *dc_graph_node_op(const dc_graph *g, int node);
/* Shape of a node's output: returns ndim. */
int dc_graph_node_shape(const dc_graph *g, int node, int *shape);
/* A node's output tensor on the device. A float input that only feeds a concatenation and
 * needs no gradient is folded into it (written straight into its channels of each image):
 * it has no tensor of its own and gets an empty one ({0}); dc_graph_read still reads it. */
dc_tensor dc_graph_value(const dc_graph *g, int node);
dc_tensor dc_graph_grad(const dc_graph *g, int node);
/* Ask for the gradient of a node that would otherwise get none (inputs). Before finalize. */
dc_status dc_graph_require_grad(dc_graph *g, int node);
/* A float input keeps a tensor of its own (never folded into a concatenation), for a caller
 * that updates it on the device through dc_graph_value. Before finalize. */
dc_status dc_graph_keep_buffer(dc_graph *g, int input);
/* The conv / dense node's op attributes, for export and visualization. */
typedef struct dc_node_info {
    int op;              /* dc_op value (host/ops.def order) */
    const char *op_name;
    const char *name;
    int inputs[3];
    int n_inputs;
    int ndim;
    int shape[DC_MAX_DIMS];
    int k, stride, pad, out_pad, out_ch;
    float alpha, p, eps, momentum;
    int param[4];        /* indices into dc_params, -1 if none */
    int tied_to;         /* tied transposed conv: the conv node whose weight it uses, or -2
                            when tied by parameter name; -1 when not tied */
    int pool_node;       /* unpool: the pool it reads switches from */
} dc_node_info;
dc_status dc_graph_node_info(const dc_graph *g, int node, dc_node_info *info);
/* One GEMM product of a training step: called for each (node, role, shape) with its count
 * per step. role: "fwd", "dW" or "dX". */
typedef void (*dc_gemm_visitor)(void *ctx, int node, const char *role, int trans_a, int trans_b,
                                int m, int n, int k, float beta, int count);
/* The GEMM products one training step of g runs through the conv, transposed-conv and dense
 * nodes in their im2col + GEMM form, with the batch chunked exactly as the conv ops chunk it
 * (a backend with fused convolutions runs those in its own form instead). For measuring a
 * backend's gemm on the step's own shapes. */
dc_status dc_graph_gemm_plan(const dc_graph *g, dc_gemm_visitor fn, void *ctx);

dc_status dc_graph_set_input(dc_graph *g, int node, const float *host);
dc_status dc_graph_set_input_int(dc_graph *g, int node, const int32_t *host);
void dc_graph_set_train(dc_graph *g, int train);
/* Seed for this step's device randomness (dropout, noise). */
void dc_graph_set_seed(dc_graph *g, uint64_t seed);
/* Change a gaussian-noise node's std at run time. */
dc_status dc_graph_set_noise_std(dc_graph *g, int node, float std);
/* Run nodes 0..last (last < 0: all). */
dc_status dc_graph_forward(dc_graph *g, int last);
/* Backward from a scalar loss node (seed 1) through every node that leads to a
 * parameter or a node that asked for a gradient. Zeroes node gradients first; parameter
 * gradients accumulate (call dc_params_zero_grad between steps). */
dc_status dc_graph_backward(dc_graph *g, int loss_node, dc_relu_mode mode);
/* Backward from any node with a given host seed gradient (numel of that node). */
dc_status dc_graph_backward_from(dc_graph *g, int node, const float *seed, dc_relu_mode mode);
dc_status dc_graph_read(dc_graph *g, int node, float *host);
dc_status dc_graph_read_grad(dc_graph *g, int node, float *host);
/* FLOPs of one forward pass (multiply-add = 2). Backward is about twice that. */
double dc_graph_forward_flops(const dc_graph *g);

/* --------------------------------------------------------------- optimizer */
typedef enum dc_optim_kind { DC_OPTIM_SGD = 0, DC_OPTIM_ADAM, DC_OPTIM_ADAMW } dc_optim_kind;
typedef enum dc_schedule { DC_SCHED_CONSTANT = 0, DC_SCHED_STEP, DC_SCHED_COSINE } dc_schedule;

typedef struct dc_optim_config {
    dc_optim_kind kind;
    float lr;
    float momentum;     /* SGD */
    int nesterov;
    float beta1, beta2, eps; /* Adam */
    float weight_decay;
    float clip_norm;    /* <= 0: no clipping */
    dc_schedule schedule;
    int step_size;      /* STEP: multiply by gamma every step_size steps */
    float gamma;
    long total_steps;   /* COSINE: decays to min_lr over total_steps */
    float min_lr;
    int warmup;         /* linear warm-up steps */
    float ema_decay;    /* > 0: keep an EMA of the weights, decay min(ema_decay, (1 + t) /
                         * (10 + t)) at step t (a short average while the weights move
                         * fast early on); 0: none */
} dc_optim_config;

void dc_optim_config_default(dc_optim_config *c, dc_optim_kind kind);
typedef struct dc_optim dc_optim;
dc_status dc_optim_create(dc_params *p, const dc_optim_config *cfg, dc_optim **out);
void dc_optim_free(dc_optim *o);
const dc_error *dc_optim_error(const dc_optim *o);
/* Learning rate at a given step under the schedule. */
float dc_optim_lr_at(const dc_optim_config *c, long step);
/* Clip (if configured) and update every trainable parameter; step counter += 1. */
dc_status dc_optim_step(dc_optim *o);
long dc_optim_steps(const dc_optim *o);
void dc_optim_set_steps(dc_optim *o, long steps);
/* Moment arenas for checkpointing (m: first moment / momentum, v: second moment). */
dc_status dc_optim_read_state(dc_optim *o, float *m, float *v);
dc_status dc_optim_write_state(dc_optim *o, const float *m, const float *v);
const dc_optim_config *dc_optim_get_config(const dc_optim *o);

DC_API_END
#ifdef __cplusplus
}
#endif
#endif
