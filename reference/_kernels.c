/* Sequential kernels of the vaelac reference codec: integer LPC (spec §6.3) and the adaptive
 * binary range coder of residuals (spec §7).  vaelac/_pykernels.py is the same code in pure
 * Python; tests hold the two against each other. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__GNUC__) && defined(__x86_64__) && !defined(VAELAC_PORTABLE_ONLY) && \
    !defined(VAELAC_PLAIN_C)
#include <immintrin.h>
/* An AVX2 and an SSE2 build of the model loops, chosen at load time; compile with
 * -DVAELAC_PORTABLE_ONLY to build (and test) the portable C alone, as on other CPUs. */
#define X86_PATHS 1
#endif

#define PROB_BITS 16
#define PROB_ONE (1u << PROB_BITS)
#define PROB_INIT (1u << (PROB_BITS - 1))
#define ADAPT_SHIFT 5
#define RANGE_TOP (1u << 24)
#define STAT_SHIFT 4
#define NUM_CONTEXTS 64
#define TREE_NODES 64
#define MAX_BITLEN 56
#define PRIOR_TOP 40
#define PRIOR_MIN 512
#define MAX_LPC_SHIFT 31 /* §5.4, as spec/constants.py */
#define MAX_COEF_BITS 16 /* §5.4, as spec/constants.py */

/* GCC and Clang spellings, with MSVC's (the Windows wheels) and plain-C ones: nothing below
 * needs a GNU extension to build; the x86 paths above are GNU-only and optional.
 * -DVAELAC_PLAIN_C builds with GCC as a compiler without GNU extensions would (for tests). */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define ALWAYS_INLINE __forceinline
#define RESTRICT __restrict
#define FLATTEN
#elif defined(__GNUC__) && !defined(VAELAC_PLAIN_C)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define RESTRICT restrict
#define FLATTEN __attribute__((flatten))
#else
#define ALWAYS_INLINE inline
#define RESTRICT restrict
#define FLATTEN
#endif

/* -------------------------------------------------------------- buffers -- */

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize,
                      const char *name) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (itemsize > 1 && (view->itemsize != itemsize || view->len % itemsize)) {
        PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes", name, itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ LPC -- */

/* Prediction of sample i (§6.3): warm-up uses fixed predictors, then the quantized LPC. */
static inline int64_t predict(const int64_t *s, Py_ssize_t i, const int32_t *coefs, int order,
                              int shift) {
    if (i < order) {
        if (i == 0) return 0;
        if (i == 1) return s[0];
        return 2 * s[i - 1] - s[i - 2];
    }
    int64_t acc = 0;
    for (int j = 0; j < order; j++) acc += (int64_t)coefs[j] * s[i - 1 - j];
    return acc >> shift; /* arithmetic shift: floor division by 2**shift */
}

static int check_lpc_args(Py_buffer *coefs, int order, int shift) {
    if (order < 1 || order > 32 || coefs->len / 4 < order || shift < 0 || shift > 31) {
        PyErr_SetString(PyExc_ValueError, "lpc: order must be 1..32 with as many coefs, shift 0..31");
        return -1;
    }
    return 0;
}

static PyObject *lpc_residual(PyObject *self, PyObject *args) {
    PyObject *s_obj, *c_obj, *r_obj;
    int order, shift;
    if (!PyArg_ParseTuple(args, "OOiiO", &s_obj, &c_obj, &order, &shift, &r_obj)) return NULL;
    Py_buffer s, c, r;
    if (get_buffer(s_obj, &s, 0, 8, "samples") < 0) return NULL;
    if (get_buffer(c_obj, &c, 0, 4, "coefs") < 0) { PyBuffer_Release(&s); return NULL; }
    if (get_buffer(r_obj, &r, 1, 8, "residual") < 0) {
        PyBuffer_Release(&s); PyBuffer_Release(&c); return NULL;
    }
    PyObject *result = NULL;
    if (check_lpc_args(&c, order, shift) == 0) {
        if (r.len < s.len) {
            PyErr_SetString(PyExc_ValueError, "residual buffer too small");
        } else {
            const int64_t *sp = s.buf;
            int64_t *rp = r.buf;
            Py_ssize_t n = s.len / 8;
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t i = 0; i < n; i++) rp[i] = sp[i] - predict(sp, i, c.buf, order, shift);
            Py_END_ALLOW_THREADS
            result = Py_None; Py_INCREF(result);
        }
    }
    PyBuffer_Release(&s); PyBuffer_Release(&c); PyBuffer_Release(&r);
    return result;
}

/* Steady-state synthesis with the order fixed at compile time, so the coefficients stay in
 * registers and the dot product is unrolled; same arithmetic as predict(). */
#define RESTORE_ORDER(P)                                                                   \
    static Py_ssize_t restore_##P(int64_t *sp, const int32_t *cp, int shift, Py_ssize_t from, \
                                  Py_ssize_t n, int64_t lo, int64_t hi) {                 \
        int64_t c[P];                                                                      \
        for (int j = 0; j < P; j++) c[j] = cp[j];                                          \
        for (Py_ssize_t i = from; i < n; i++) {                                            \
            int64_t acc = 0;                                                               \
            for (int j = 0; j < P; j++) acc += c[j] * sp[i - 1 - j];                       \
            int64_t v = sp[i] + (acc >> shift);                                            \
            if (v < lo || v > hi) return i;                                                \
            sp[i] = v;                                                                     \
        }                                                                                  \
        return -1;                                                                         \
    }
RESTORE_ORDER(1) RESTORE_ORDER(2) RESTORE_ORDER(3) RESTORE_ORDER(4) RESTORE_ORDER(5)
RESTORE_ORDER(6) RESTORE_ORDER(7) RESTORE_ORDER(8) RESTORE_ORDER(9) RESTORE_ORDER(10)
RESTORE_ORDER(11) RESTORE_ORDER(12) RESTORE_ORDER(13) RESTORE_ORDER(14) RESTORE_ORDER(15)
RESTORE_ORDER(16) RESTORE_ORDER(17) RESTORE_ORDER(18) RESTORE_ORDER(19) RESTORE_ORDER(20)
RESTORE_ORDER(21) RESTORE_ORDER(22) RESTORE_ORDER(23) RESTORE_ORDER(24) RESTORE_ORDER(25)
RESTORE_ORDER(26) RESTORE_ORDER(27) RESTORE_ORDER(28) RESTORE_ORDER(29) RESTORE_ORDER(30)
RESTORE_ORDER(31) RESTORE_ORDER(32)

typedef Py_ssize_t (*RestoreFn)(int64_t *, const int32_t *, int, Py_ssize_t, Py_ssize_t, int64_t,
                                int64_t);
static const RestoreFn RESTORE[33] = {
    NULL, restore_1, restore_2, restore_3, restore_4, restore_5, restore_6, restore_7,
    restore_8, restore_9, restore_10, restore_11, restore_12, restore_13, restore_14,
    restore_15, restore_16, restore_17, restore_18, restore_19, restore_20, restore_21,
    restore_22, restore_23, restore_24, restore_25, restore_26, restore_27, restore_28,
    restore_29, restore_30, restore_31, restore_32};

static Py_ssize_t restore_steady(int64_t *sp, const int32_t *cp, int order, int shift,
                                 Py_ssize_t from, Py_ssize_t n, int64_t lo, int64_t hi) {
    return RESTORE[order](sp, cp, shift, from, n, lo, hi);
}

/* unpack_signed(data, count, width, out): count two's-complement values of width bits, MSB
 * first (§5.4), into out: int32 for the LPC coefficients of a PREDICTED subframe (width up to
 * 32), int64 for the samples of a VERBATIM one (up to 33, a 32-bit side channel). */
static PyObject *unpack_signed(PyObject *self, PyObject *args) {
    PyObject *d_obj, *o_obj;
    int count, width;
    if (!PyArg_ParseTuple(args, "OiiO", &d_obj, &count, &width, &o_obj)) return NULL;
    Py_buffer d, o;
    if (get_buffer(d_obj, &d, 0, 1, "data") < 0) return NULL;
    if (get_buffer(o_obj, &o, 1, 0, "out") < 0) { PyBuffer_Release(&d); return NULL; }
    const Py_ssize_t item = o.itemsize;
    int ok = (item == 4 || item == 8) && width >= 1 && width <= (item == 4 ? 32 : 33)
             && count >= 0 && (int64_t)count * width <= (int64_t)d.len * 8
             && o.len / item >= count;
    if (ok) {
        const uint8_t *in = d.buf;
        uint64_t acc = 0;
        int have = 0;
        Py_ssize_t pos = 0;
        for (int i = 0; i < count; i++) {
            while (have < width) { acc = (acc << 8) | in[pos++]; have += 8; }
            uint64_t v = (acc >> (have - width)) & (((uint64_t)1 << width) - 1);
            have -= width;
            int64_t x = (int64_t)v - ((v >> (width - 1)) ? ((int64_t)1 << width) : 0);
            if (item == 4) ((int32_t *)o.buf)[i] = (int32_t)x;
            else ((int64_t *)o.buf)[i] = x;
        }
    } else {
        PyErr_SetString(PyExc_ValueError, "unpack_signed: out of int32 (width 1..32) or int64 "
                        "(1..33) items, count >= 0, enough data");
    }
    PyBuffer_Release(&d); PyBuffer_Release(&o);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* Rebuild samples from residuals in place; returns the index of the first sample outside
 * [lo, hi] (the decoder rejects the stream there), or -1. */
static PyObject *lpc_restore(PyObject *self, PyObject *args) {
    PyObject *r_obj, *c_obj;
    int order, shift;
    long long lo, hi;
    if (!PyArg_ParseTuple(args, "OOiiLL", &r_obj, &c_obj, &order, &shift, &lo, &hi)) return NULL;
    Py_buffer r, c;
    if (get_buffer(r_obj, &r, 1, 8, "residual") < 0) return NULL;
    if (get_buffer(c_obj, &c, 0, 4, "coefs") < 0) { PyBuffer_Release(&r); return NULL; }
    Py_ssize_t bad = -2;
    if (check_lpc_args(&c, order, shift) == 0) {
        int64_t *sp = r.buf;
        const int32_t *cp = c.buf;
        Py_ssize_t n = r.len / 8;
        bad = -1;
        Py_BEGIN_ALLOW_THREADS
        Py_ssize_t warm = n < order ? n : order;
        for (Py_ssize_t i = 0; i < warm && bad < 0; i++) {
            int64_t v = sp[i] + predict(sp, i, cp, order, shift);
            if (v < lo || v > hi) bad = i;
            else sp[i] = v;
        }
        if (bad < 0 && warm < n) bad = restore_steady(sp, cp, order, shift, warm, n, lo, hi);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&r); PyBuffer_Release(&c);
    if (bad == -2) return NULL;
    return PyLong_FromSsize_t(bad);
}

/* -------------------------------------------------------- range coder -- */

/* One adaptive binary probability: P(bit = 0) in units of 2**-16 (spec §7.2). */
typedef uint16_t Prob;

typedef struct {
    Prob tree[NUM_CONTEXTS][TREE_NODES];
    Prob mant1[TREE_NODES];
    Prob mant2[TREE_NODES][2];
} Model;

/* Initial probabilities (spec §7.3): each context's tree starts from a prior that halves the
 * weight of a bit length for every step away from the context's centre, max(c - 4, 0). */
static void model_prior(Model *m) {
    Prob *p = (Prob *)m;
    size_t count = sizeof(Model) / sizeof(Prob);
    for (size_t i = 0; i < count; i++) p[i] = PROB_INIT;
    for (int c = 0; c < NUM_CONTEXTS; c++) {
        int centre = c > STAT_SHIFT ? c - STAT_SHIFT : 0;
        uint64_t w[2 * TREE_NODES];
        for (int len = 0; len < TREE_NODES; len++) {
            int distance = len > centre ? len - centre : centre - len;
            w[TREE_NODES + len] = (uint64_t)1 << (distance < PRIOR_TOP ? PRIOR_TOP - distance : 0);
        }
        for (int node = TREE_NODES - 1; node >= 1; node--) w[node] = w[2 * node] + w[2 * node + 1];
        for (int node = 1; node < TREE_NODES; node++) {
            uint64_t prob = (w[2 * node] << PROB_BITS) / w[node];
            if (prob < PRIOR_MIN) prob = PRIOR_MIN;
            if (prob > PROB_ONE - PRIOR_MIN) prob = PROB_ONE - PRIOR_MIN;
            m->tree[c][node] = (Prob)prob;
        }
    }
}

/* Every subframe starts from the same initial model: computed once (a few thousand
 * divisions), then copied. */
static Model INITIAL_MODEL;

static void model_init(Model *m) { memcpy(m, &INITIAL_MODEL, sizeof *m); }

/* The bit length of x (0 for 0). */
#if defined(__GNUC__) && !defined(VAELAC_PLAIN_C)
static inline int bitlen64(uint64_t x) { return x ? 64 - __builtin_clzll(x) : 0; }
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_ARM64))
static inline int bitlen64(uint64_t x) {
    unsigned long top;
    return _BitScanReverse64(&top, x) ? (int)top + 1 : 0;
}
#else
static inline int bitlen64(uint64_t x) {
    int n = 0;
    for (int step = 32; step; step >>= 1)
        if (x >> step) { x >>= step; n += step; }
    return n + (int)x;
}
#endif

static inline int context_of(uint64_t stat) {
    int c = bitlen64(stat);
    return c < NUM_CONTEXTS ? c : NUM_CONTEXTS - 1;
}

typedef struct {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t cache_size;
    uint8_t *out;
    size_t len, cap;
    int failed;
} Encoder;

static void enc_put(Encoder *e, uint8_t byte) {
    if (e->len == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 4096;
        uint8_t *p = realloc(e->out, cap);
        if (!p) { e->failed = 1; return; }
        e->out = p; e->cap = cap;
    }
    e->out[e->len++] = byte;
}

static void enc_shift_low(Encoder *e) {
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32);
        uint8_t temp = e->cache;
        do {
            enc_put(e, (uint8_t)(temp + carry));
            temp = 0xFF;
        } while (--e->cache_size != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->cache_size++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

static inline void enc_bit(Encoder *e, Prob *p, int bit) {
    uint32_t bound = (e->range >> PROB_BITS) * *p;
    if (!bit) {
        e->range = bound;
        *p += (PROB_ONE - *p) >> ADAPT_SHIFT;
    } else {
        e->low += bound;
        e->range -= bound;
        *p -= *p >> ADAPT_SHIFT;
    }
    while (e->range < RANGE_TOP) { e->range <<= 8; enc_shift_low(e); }
}

static inline void enc_fixed(Encoder *e, uint32_t p, int bit) {
    uint32_t bound = (e->range >> PROB_BITS) * p;
    if (!bit) {
        e->range = bound;
    } else {
        e->low += bound;
        e->range -= bound;
    }
    while (e->range < RANGE_TOP) { e->range <<= 8; enc_shift_low(e); }
}

static inline void enc_direct(Encoder *e, uint64_t value, int nbits) {
    for (int i = nbits - 1; i >= 0; i--) {
        e->range >>= 1;
        if ((value >> i) & 1) e->low += e->range;
        while (e->range < RANGE_TOP) { e->range <<= 8; enc_shift_low(e); }
    }
}

/* Latent symbols (spec §8.2): levels_log2 binary decisions each, down a tree whose node
 * probabilities are fixed by the model's prior (prior[dim][node - 1]); no adaptation. */
typedef struct {
    Py_buffer symbols, prior;
    int count, levels_log2, present;
} Latents;

static int get_latents(PyObject *sym_obj, PyObject *prior_obj, int levels_log2, int writable,
                       Latents *lat) {
    lat->present = 0;
    if (sym_obj == Py_None) return 0;
    if (levels_log2 < 1 || levels_log2 > 12) {
        PyErr_SetString(PyExc_ValueError, "latent levels_log2 must be 1..12");
        return -1;
    }
    if (get_buffer(sym_obj, &lat->symbols, writable, 8, "latents") < 0) return -1;
    if (get_buffer(prior_obj, &lat->prior, 0, 2, "prior") < 0) {
        PyBuffer_Release(&lat->symbols);
        return -1;
    }
    lat->count = (int)(lat->symbols.len / 8);
    lat->levels_log2 = levels_log2;
    Py_ssize_t nodes = ((Py_ssize_t)1 << levels_log2) - 1;
    const uint16_t *pr = lat->prior.buf;
    int ok = lat->prior.len / 2 == nodes * lat->count;
    for (Py_ssize_t i = 0; ok && i < lat->prior.len / 2; i++) ok = pr[i] != 0;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "prior must hold count x (2**levels - 1) values 1..65535");
        PyBuffer_Release(&lat->symbols); PyBuffer_Release(&lat->prior);
        return -1;
    }
    lat->present = 1;
    return 0;
}

static void release_latents(Latents *lat) {
    if (lat->present) { PyBuffer_Release(&lat->symbols); PyBuffer_Release(&lat->prior); }
}

/* ------------------------------------------- coding cost (encoder only) -- */

/* floor-ish 65536 * log2(x) for x >= 1 by repeated squaring: integer arithmetic, so that the
 * encoder's choices between candidates are the same on every machine and in _pykernels. */
static uint32_t log2_q16(uint32_t x) {
    const int whole = bitlen64(x) - 1;
    uint64_t y = ((uint64_t)x << 30) >> whole; /* x / 2**whole in [1, 2), 30 fraction bits */
    uint32_t fraction = 0;
    for (int b = 15; b >= 0; b--) {
        y = (y * y) >> 30;
        if (y >= ((uint64_t)2 << 30)) { y >>= 1; fraction |= 1u << b; }
    }
    return ((uint32_t)whole << 16) | fraction;
}

#define COST_INDEX_BITS 12
static uint32_t BIT_COST[1 << COST_INDEX_BITS]; /* -log2(i / 4096) in 2**-16 bits */

static void cost_init(void) {
    BIT_COST[0] = (uint32_t)COST_INDEX_BITS << 16; /* probabilities below 1/4096 as 1/4096 */
    for (uint32_t i = 1; i < (1u << COST_INDEX_BITS); i++)
        BIT_COST[i] = ((uint32_t)COST_INDEX_BITS << 16) - log2_q16(i);
}

/* The cost of coding ``bit`` with P(0) = *p, with the adaptation of enc_bit. */
static inline uint32_t cost_bit(Prob *p, int bit) {
    const uint32_t prob = *p;
    if (!bit) {
        *p = (Prob)(prob + ((PROB_ONE - prob) >> ADAPT_SHIFT));
        return BIT_COST[prob >> (PROB_BITS - COST_INDEX_BITS)];
    }
    *p = (Prob)(prob - (prob >> ADAPT_SHIFT));
    return BIT_COST[(PROB_ONE - prob) >> (PROB_BITS - COST_INDEX_BITS)];
}

/* Where the coding decisions of §8.2 and §7.4 go: into the range encoder (rc_encode), or,
 * encoder only, into the sum of their costs (rc_cost: the information the coder would code,
 * in 2**-16 bits, without coding it). One walk of the decisions serves both. */
typedef struct {
    Encoder *enc; /* NULL: count costs */
    int64_t cost;
} Sink;

static ALWAYS_INLINE void sink_bit(Sink *s, Prob *p, int bit) {
    if (s->enc) enc_bit(s->enc, p, bit);
    else s->cost += cost_bit(p, bit);
}

static ALWAYS_INLINE void sink_fixed(Sink *s, uint32_t p, int bit) {
    if (s->enc) {
        enc_fixed(s->enc, p, bit);
    } else {
        Prob fixed = (Prob)p; /* cost_bit's update of the copy is dropped: fixed probabilities */
        s->cost += cost_bit(&fixed, bit);
    }
}

static ALWAYS_INLINE void sink_direct(Sink *s, uint64_t value, int nbits) {
    if (s->enc) enc_direct(s->enc, value, nbits);
    else s->cost += (int64_t)nbits << 16;
}

/* The latent symbols (fixed prior trees, §8.2), then the residuals (§7.4), into the sink;
 * returns the index of a residual beyond MAX_BITLEN (nothing after it is sunk), or -1. */
static ALWAYS_INLINE Py_ssize_t sink_residuals(Sink *s, Model *m, const Latents *lat,
                                               const int64_t *rp, Py_ssize_t n, int mean_log2) {
    if (lat->present) {
        const int64_t *q = lat->symbols.buf;
        const uint16_t *pr = lat->prior.buf;
        const int nodes = (1 << lat->levels_log2) - 1;
        for (int i = 0; i < lat->count; i++) {
            unsigned node = 1;
            for (int b = lat->levels_log2 - 1; b >= 0; b--) {
                const int bit = (int)((q[i] >> b) & 1);
                sink_fixed(s, pr[i * nodes + node - 1], bit);
                node = 2 * node + (unsigned)bit;
            }
        }
    }
    uint64_t stat = (uint64_t)1 << (mean_log2 + STAT_SHIFT);
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t x = rp[i];
        const uint64_t v = ((uint64_t)x << 1) ^ (uint64_t)(x >> 63);
        const int len = bitlen64(v);
        if (len > MAX_BITLEN) return i;
        Prob *tree = m->tree[context_of(stat)];
        unsigned node = 1;
        for (int b = 5; b >= 0; b--) {
            const int bit = (len >> b) & 1;
            sink_bit(s, &tree[node], bit);
            node = 2 * node + (unsigned)bit;
        }
        if (len >= 2) {
            const int m1 = (int)((v >> (len - 2)) & 1);
            sink_bit(s, &m->mant1[len], m1);
            if (len >= 3) {
                sink_bit(s, &m->mant2[len][m1], (int)((v >> (len - 3)) & 1));
                if (len >= 4) sink_direct(s, v, len - 3);
            }
        }
        stat += v - (stat >> STAT_SHIFT);
    }
    return -1;
}

/* The arguments rc_encode and rc_cost share: (residual, initial_mean_log2[, latents, prior,
 * levels_log2]), checked; on success the caller releases r and lat. */
static int coder_args(PyObject *args, Py_buffer *r, Latents *lat, int *mean_log2) {
    PyObject *r_obj, *sym_obj = Py_None, *prior_obj = Py_None;
    int levels_log2 = 0;
    if (!PyArg_ParseTuple(args, "Oi|OOi", &r_obj, mean_log2, &sym_obj, &prior_obj,
                          &levels_log2)) return -1;
    if (*mean_log2 < 0 || *mean_log2 > 55) {
        PyErr_SetString(PyExc_ValueError, "initial_mean_log2 must be 0..55");
        return -1;
    }
    if (get_latents(sym_obj, prior_obj, levels_log2, 0, lat) < 0) return -1;
    if (lat->present) {
        const int64_t *q = lat->symbols.buf;
        for (int i = 0; i < lat->count; i++) {
            if (q[i] < 0 || q[i] >= ((int64_t)1 << levels_log2)) {
                release_latents(lat);
                PyErr_SetString(PyExc_ValueError, "latent symbol out of range");
                return -1;
            }
        }
    }
    if (get_buffer(r_obj, r, 0, 8, "residual") < 0) { release_latents(lat); return -1; }
    return 0;
}

/* The walk rc_encode and rc_cost share: their arguments checked (coder_args), the decisions
 * sunk with the coder's adaptive model, without the GIL. -1 with an exception set, else 0 and
 * *bad as sink_residuals returns it. */
static int run_sink(PyObject *args, Sink *sink, Py_ssize_t *bad) {
    Py_buffer r;
    Latents lat;
    int mean_log2;
    if (coder_args(args, &r, &lat, &mean_log2) < 0) return -1;
    Model *m = malloc(sizeof(Model));
    if (!m) { PyBuffer_Release(&r); release_latents(&lat); PyErr_NoMemory(); return -1; }
    Py_BEGIN_ALLOW_THREADS
    model_init(m);
    *bad = sink_residuals(sink, m, &lat, r.buf, r.len / 8, mean_log2);
    Py_END_ALLOW_THREADS
    free(m);
    PyBuffer_Release(&r);
    release_latents(&lat);
    return 0;
}

/* rc_encode(residual, mean_log2[, latents, prior, levels_log2]) -> the coded bytes (§7, §8.2);
 * OverflowError for a residual beyond MAX_BITLEN. */
static PyObject *rc_encode(PyObject *self, PyObject *args) {
    Encoder e = {0, 0xFFFFFFFFu, 0, 1, NULL, 0, 0, 0};
    Sink sink = {&e, 0};
    Py_ssize_t bad;
    if (run_sink(args, &sink, &bad) < 0) return NULL;
    if (bad >= 0) {
        free(e.out);
        PyErr_Format(PyExc_OverflowError, "residual %zd is too large to code", bad);
        return NULL;
    }
    for (int k = 0; k < 5; k++) enc_shift_low(&e);
    if (e.failed) { free(e.out); return PyErr_NoMemory(); }
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)e.out, (Py_ssize_t)e.len);
    free(e.out);
    return bytes;
}

/* rc_cost(residual, mean_log2[, latents, prior, levels_log2]) -> the information rc_encode
 * would code, in 2**-16 bits (the same adaptive model, no range coder): what the encoder
 * compares candidates by before coding the one it keeps. -1 if a residual is too large. */
static PyObject *rc_cost(PyObject *self, PyObject *args) {
    Sink sink = {NULL, 0};
    Py_ssize_t bad;
    if (run_sink(args, &sink, &bad) < 0) return NULL;
    return PyLong_FromLongLong(bad >= 0 ? -1 : sink.cost);
}

typedef struct {
    uint32_t range, code;
    const uint8_t *in;
    size_t pos, len;
    int overrun;
} Decoder;

static inline uint8_t dec_byte(Decoder *d) {
    if (d->pos < d->len) return d->in[d->pos++];
    d->overrun = 1;
    return 0;
}

/* One adaptive decision (§7.2) with probability ``prob``, its updated value stored in *slot.
 * Written without a branch on the bit, whose value the CPU cannot predict: both outcomes are
 * computed and one is selected (conditional moves). Taking the probability as a value lets a
 * caller load it ahead of time (dec_tree, the second mantissa bit). */
static inline int dec_decide(Decoder *d, uint32_t prob, Prob *slot) {
    const uint32_t bound = (d->range >> PROB_BITS) * prob;
    const int bit = d->code >= bound;
    d->code -= bound & (0u - (uint32_t)bit);
    d->range = bit ? d->range - bound : bound;
    *slot = (Prob)(bit ? prob - (prob >> ADAPT_SHIFT) : prob + ((PROB_ONE - prob) >> ADAPT_SHIFT));
    while (d->range < RANGE_TOP) { d->range <<= 8; d->code = (d->code << 8) | dec_byte(d); }
    return bit;
}

static inline int dec_bit(Decoder *d, Prob *p) { return dec_decide(d, *p, p); }

/* The bit length of a residual: 6 adaptive bits down the context's tree (§7.4). The
 * probabilities of both children are loaded while a bit is decoded, which takes the load off
 * the chain of dependent steps. */
static inline unsigned dec_tree(Decoder *d, Prob *tree) {
    unsigned node = 1;
    uint32_t prob = tree[1];
    for (int level = 0; level < 6; level++) {
        uint32_t p0 = 0, p1 = 0;
        if (level < 5) { p0 = tree[2 * node]; p1 = tree[2 * node + 1]; }
        const int bit = dec_decide(d, prob, &tree[node]);
        node = 2 * node + (unsigned)bit;
        prob = bit ? p1 : p0;
    }
    return node;
}

static inline int dec_fixed(Decoder *d, uint32_t p) {
    uint32_t bound = (d->range >> PROB_BITS) * p;
    int bit;
    if (d->code < bound) {
        d->range = bound;
        bit = 0;
    } else {
        d->code -= bound;
        d->range -= bound;
        bit = 1;
    }
    while (d->range < RANGE_TOP) { d->range <<= 8; d->code = (d->code << 8) | dec_byte(d); }
    return bit;
}

static inline uint64_t dec_direct(Decoder *d, int nbits) {
    uint64_t value = 0;
    for (int i = 0; i < nbits; i++) {
        d->range >>= 1;
        int bit = d->code >= d->range;
        if (bit) d->code -= d->range;
        value = (value << 1) | (uint64_t)bit;
        while (d->range < RANGE_TOP) { d->range <<= 8; d->code = (d->code << 8) | dec_byte(d); }
    }
    return value;
}

/* rc_decode(data, mean_log2, out) -> status: 0 ok, 1 payload too short, 2 bytes left over,
 * 3 first byte not zero, 4 a residual's bit length above the limit, 5 code not below range. */
static PyObject *rc_decode(PyObject *self, PyObject *args) {
    PyObject *d_obj, *o_obj, *sym_obj = Py_None, *prior_obj = Py_None;
    int mean_log2, levels_log2 = 0;
    if (!PyArg_ParseTuple(args, "OiO|OOi", &d_obj, &mean_log2, &o_obj, &sym_obj, &prior_obj,
                          &levels_log2)) return NULL;
    if (mean_log2 < 0 || mean_log2 > 55) {
        PyErr_SetString(PyExc_ValueError, "initial_mean_log2 must be 0..55");
        return NULL;
    }
    Latents lat;
    if (get_latents(sym_obj, prior_obj, levels_log2, 1, &lat) < 0) return NULL;
    Py_buffer data, out;
    if (get_buffer(d_obj, &data, 0, 1, "data") < 0) { release_latents(&lat); return NULL; }
    if (get_buffer(o_obj, &out, 1, 8, "out") < 0) {
        PyBuffer_Release(&data); release_latents(&lat); return NULL;
    }
    Model *m = malloc(sizeof(Model));
    if (!m) {
        PyBuffer_Release(&data); PyBuffer_Release(&out); release_latents(&lat);
        return PyErr_NoMemory();
    }
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    model_init(m);
    Decoder d = {0xFFFFFFFFu, 0, data.buf, 0, (size_t)data.len, 0};
    if (dec_byte(&d) != 0) status = 3;
    for (int k = 0; k < 4; k++) d.code = (d.code << 8) | dec_byte(&d);
    if (status == 0 && d.code == 0xFFFFFFFFu) status = 5;
    if (status == 0 && lat.present) {
        int64_t *q = lat.symbols.buf;
        const uint16_t *pr = lat.prior.buf;
        int nodes = (1 << lat.levels_log2) - 1;
        for (int i = 0; i < lat.count; i++) {
            unsigned node = 1;
            for (int b = 0; b < lat.levels_log2; b++)
                node = 2 * node + dec_fixed(&d, pr[i * nodes + node - 1]);
            q[i] = (int64_t)(node - (1u << lat.levels_log2));
        }
        if (d.overrun) status = 1;
    }
    int64_t *op = out.buf;
    Py_ssize_t n = out.len / 8;
    uint64_t stat = (uint64_t)1 << (mean_log2 + STAT_SHIFT);
    for (Py_ssize_t i = 0; i < n && status == 0; i++) {
        Prob *tree = m->tree[context_of(stat)];
        unsigned node = dec_tree(&d, tree);
        int len = (int)(node - TREE_NODES);
        uint64_t v;
        if (len > MAX_BITLEN) { status = 4; break; }
        if (len < 2) {
            v = (uint64_t)len;
        } else {
            Prob *second = m->mant2[len];
            const Prob second0 = second[0], second1 = second[1];  /* loaded ahead, as dec_tree */
            int m1 = dec_bit(&d, &m->mant1[len]);
            v = 2 | (uint64_t)m1;
            if (len >= 3) {
                v = (v << 1) | (uint64_t)dec_decide(&d, m1 ? second1 : second0, &second[m1]);
                if (len >= 4) v = (v << (len - 3)) | dec_direct(&d, len - 3);
            }
        }
        op[i] = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
        stat += v - (stat >> STAT_SHIFT);
        if (d.overrun) status = 1;
    }
    if (status == 0 && d.overrun) status = 1;
    if (status == 0 && d.pos != d.len) status = 2;
    Py_END_ALLOW_THREADS
    free(m);
    PyBuffer_Release(&data); PyBuffer_Release(&out);
    release_latents(&lat);
    return PyLong_FromLong(status);
}


/* ------------------------------------------------- model network (§8.3) -- */

#define FEATURE_MAX 2047
#define ACTIVATION_MAX 2047
#define FEATURE_CLAMP ((int64_t)1 << 40)
#define OUTPUT_MAX 32768
#define MAX_HISTORY 32
#define MAX_HIDDEN 112
#define MAX_FEATURES (2 * MAX_HISTORY + 5)
#define RESIDUAL_FEATURE_SHIFT 12
#define DIFFERENCE_FEATURE_SHIFT 9
#define OUTPUT_UNIT_SHIFT 12
#define SCALE_STAT_SHIFT 4

/* The per-sample decoder network of a RESIDUAL model with its per-frame bias (§8.3, §8.4):
 * features (2H + 5) -> hidden (ReLU, clamped) -> one output. Every sum fits in int32 because
 * the model loader bounds weights, biases and fan-in (§8.1), so every partial sum does too and
 * the order of the additions cannot change a result. That freedom sets the layout: features
 * are padded with zeros to a multiple of 8 (known at compile time), hidden units to a multiple
 * of 8 (zero weights, zero bias: a padded unit is ReLU(0) = 0 with output weight 0), and the
 * first layer is stored per block of 8 hidden units as pairs of features, unit by unit:
 *     w1[block][pair][unit][2] = (W[8 block + unit][2 pair], W[8 block + unit][2 pair + 1]),
 * so one block's 8 sums advance by two features with one multiply-add of 16 int16 (vpmaddwd)
 * and no horizontal sums. Padding adds zeros, so the sums are unchanged. */
#define FEATURE_PAD 8
#define HIDDEN_BLOCK 8
#define MAX_PADDED ((MAX_FEATURES + FEATURE_PAD - 1) / FEATURE_PAD * FEATURE_PAD)
#define MAX_HIDDEN_PADDED ((MAX_HIDDEN + HIDDEN_BLOCK - 1) / HIDDEN_BLOCK * HIDDEN_BLOCK)

typedef struct {
    int history, features, padded, hidden, blocks, shift1, shift2;
    int32_t b2;
    int16_t *w1;    /* blocks x (padded / 2) x HIDDEN_BLOCK x 2, see above */
    int16_t *rows;  /* hidden x padded: W's rows, for the portable build */
    int32_t c1[MAX_HIDDEN_PADDED];
    int16_t w2[MAX_HIDDEN_PADDED];
} Net;

static void release_net(Net *n) {
    free(n->w1);
    free(n->rows);
    n->w1 = n->rows = NULL;
}

static int get_net(PyObject *obj, Net *n) {
    PyObject *w1_obj, *c1_obj, *w2_obj;
    n->w1 = n->rows = NULL;
    if (!PyArg_ParseTuple(obj, "iiiOOOi", &n->history, &n->shift1, &n->shift2, &w1_obj, &c1_obj,
                          &w2_obj, &n->b2)) return -1;
    if (n->history < 1 || n->history > MAX_HISTORY || n->shift1 < 0 || n->shift1 > 31 ||
        n->shift2 < 0 || n->shift2 > 31) {
        PyErr_SetString(PyExc_ValueError, "net: history 1..32, shifts 0..31");
        return -1;
    }
    n->features = 2 * n->history + 5;
    n->padded = (n->features + FEATURE_PAD - 1) / FEATURE_PAD * FEATURE_PAD;
    Py_buffer w1, c1, w2;
    if (get_buffer(w1_obj, &w1, 0, 2, "w1") < 0) return -1;
    if (get_buffer(c1_obj, &c1, 0, 4, "c1") < 0) { PyBuffer_Release(&w1); return -1; }
    if (get_buffer(w2_obj, &w2, 0, 2, "w2") < 0) {
        PyBuffer_Release(&w1); PyBuffer_Release(&c1); return -1;
    }
    n->hidden = (int)(c1.len / 4);
    int ok = n->hidden >= 1 && n->hidden <= MAX_HIDDEN && w2.len / 2 == n->hidden &&
             w1.len / 2 == (Py_ssize_t)n->hidden * n->features;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "net: w1 must be hidden x (2H+5), w2 and c1 hidden");
    } else {
        n->blocks = (n->hidden + HIDDEN_BLOCK - 1) / HIDDEN_BLOCK;
        n->w1 = calloc((size_t)n->blocks * HIDDEN_BLOCK * n->padded, sizeof(int16_t));
        n->rows = calloc((size_t)n->hidden * n->padded, sizeof(int16_t));
        if (!n->w1 || !n->rows) {
            release_net(n);
            PyErr_NoMemory();
            ok = 0;
        } else {
            const int16_t *src = w1.buf;
            for (int i = 0; i < n->hidden; i++) {
                int16_t *block = n->w1 + (size_t)(i / HIDDEN_BLOCK) * HIDDEN_BLOCK * n->padded;
                for (int j = 0; j < n->features; j++)
                    block[(j / 2) * 2 * HIDDEN_BLOCK + (i % HIDDEN_BLOCK) * 2 + j % 2] =
                        src[(size_t)i * n->features + j];
                memcpy(n->rows + (size_t)i * n->padded, src + (size_t)i * n->features,
                       (size_t)n->features * sizeof(int16_t));
            }
            memset(n->c1, 0, sizeof n->c1);
            memset(n->w2, 0, sizeof n->w2);
            memcpy(n->c1, c1.buf, (size_t)n->hidden * sizeof(int32_t));
            memcpy(n->w2, w2.buf, (size_t)n->hidden * sizeof(int16_t));
        }
    }
    PyBuffer_Release(&w1); PyBuffer_Release(&c1); PyBuffer_Release(&w2);
    return ok ? 0 : -1;
}

static inline int16_t clamp_feature(int64_t y) {
    return (int16_t)(y > FEATURE_MAX ? FEATURE_MAX : y < -FEATURE_MAX ? -FEATURE_MAX : y);
}

/* clamp(clamp(v, +-2**40) * 2**up >> k, +-2047); for |v| <= 2**40 the product-and-shift is a
 * single shift of v. */
static inline int16_t scaled(int64_t v, int up, int k) {
    if (v > FEATURE_CLAMP) v = FEATURE_CLAMP;
    else if (v < -FEATURE_CLAMP) v = -FEATURE_CLAMP;
    int64_t y = k >= up ? v >> (k - up) : v * ((int64_t)1 << (up - k));
    return clamp_feature(y);
}

/* The network's inputs for sample t (§8.3): the residuals e and values s before t, the LPC
 * prediction of t, and the residuals of the channel coded before this one (cross, or NULL). */
static inline void features(const int64_t *e, const int64_t *s, const int64_t *cross,
                            Py_ssize_t n, Py_ssize_t t, int64_t pred, int history, int k,
                            int width, int16_t *x) {
    if (t > history) {  /* the whole history exists */
        for (int j = 1; j <= history; j++) {
            x[j - 1] = scaled(e[t - j], RESIDUAL_FEATURE_SHIFT, k);
            x[history + j - 1] = scaled(s[t - j] - s[t - j - 1], DIFFERENCE_FEATURE_SHIFT, k);
        }
    } else {
        for (int j = 1; j <= history; j++) {
            x[j - 1] = t >= j ? scaled(e[t - j], RESIDUAL_FEATURE_SHIFT, k) : 0;
            x[history + j - 1] =
                t >= j + 1 ? scaled(s[t - j] - s[t - j - 1], DIFFERENCE_FEATURE_SHIFT, k) : 0;
        }
    }
    int64_t last = t >= 1 ? s[t - 1] : 0;
    int64_t level = width >= 12 ? last >> (width - 12) : last * ((int64_t)1 << (12 - width));
    x[2 * history] = clamp_feature(level);
    x[2 * history + 1] = scaled(pred - last, DIFFERENCE_FEATURE_SHIFT, k);
    for (int j = -1; j <= 1; j++) {
        Py_ssize_t u = t + j;
        x[2 * history + 3 + j] =
            cross && u >= 0 && u < n ? scaled(cross[u], RESIDUAL_FEATURE_SHIFT, k) : 0;
    }
}

/* The same inputs, updated from those of sample t - 1 (computed with shift kprev): while k
 * stays the same, the history parts only move by one place and gain one new value. */
static inline void next_features(const int64_t *e, const int64_t *s, const int64_t *cross,
                                 Py_ssize_t n, Py_ssize_t t, int64_t pred, int history, int k,
                                 int kprev, int width, int16_t *x) {
    if (k != kprev || t == 0) {
        features(e, s, cross, n, t, pred, history, k, width, x);
        return;
    }
    memmove(x + 1, x, (size_t)(history - 1) * sizeof(int16_t));
    memmove(x + history + 1, x + history, (size_t)(history - 1) * sizeof(int16_t));
    x[0] = scaled(e[t - 1], RESIDUAL_FEATURE_SHIFT, k);
    x[history] = t >= 2 ? scaled(s[t - 1] - s[t - 2], DIFFERENCE_FEATURE_SHIFT, k) : 0;
    int64_t last = s[t - 1];
    int64_t level = width >= 12 ? last >> (width - 12) : last * ((int64_t)1 << (12 - width));
    x[2 * history] = clamp_feature(level);
    x[2 * history + 1] = scaled(pred - last, DIFFERENCE_FEATURE_SHIFT, k);
    if (cross) {
        for (int j = -1; j <= 1; j++) {
            Py_ssize_t u = t + j;
            x[2 * history + 3 + j] = u < n ? scaled(cross[u], RESIDUAL_FEATURE_SHIFT, k) : 0;
        }
    }
}

/* The correction added to the LPC prediction of sample t (§8.3), for P padded features: the
 * first layer's sums, ReLU clamped to 0..ACTIVATION_MAX, the output sum, its bias and clamp,
 * scaled to the residual's unit. Three builds of the same integer sums:
 * - AVX2: one block of 8 hidden units is one register; a pair of features is one int32 lane
 *   broadcast to all lanes, and one vpmaddwd adds w * x of both features to all 8 sums;
 * - SSE2 (every x86-64 CPU): the same with two registers of 4 units; the hidden sums are packed
 *   to int16 with saturation, which keeps their order, so clamping after the pack gives the
 *   clamp of the int32 value, and pmaddwd multiplies them by the output weights;
 * - portable C, one unit at a time (every platform; tests hold the three against each other). */
static inline int64_t output_unit(const Net *n, int32_t o, int k) {
    o = (o + n->b2) >> n->shift2;
    if (o > OUTPUT_MAX) o = OUTPUT_MAX;
    else if (o < -OUTPUT_MAX) o = -OUTPUT_MAX;
    int kk = k < 40 ? k : 40;
    return ((int64_t)o * ((int64_t)1 << kk)) >> OUTPUT_UNIT_SHIFT;
}

#if defined(X86_PATHS)
#define AVX2_TARGET __attribute__((target("avx2")))
#define DEFINE_CORRECTION_AVX2(P)                                                          \
    AVX2_TARGET static inline int64_t correction_avx2_##P(const Net *n, const int16_t *x, \
                                                          int k) {                         \
        __m256i pairs[P / 2];                                                              \
        for (int p = 0; p < P / 2; p++) {                                                  \
            int32_t pair;                                                                  \
            memcpy(&pair, x + 2 * p, sizeof pair);                                         \
            pairs[p] = _mm256_set1_epi32(pair);                                            \
        }                                                                                  \
        const __m128i shift1 = _mm_cvtsi32_si128(n->shift1);                               \
        const __m256i zero = _mm256_setzero_si256();                                       \
        const __m256i top = _mm256_set1_epi32(ACTIVATION_MAX);                             \
        __m256i out = zero;                                                                \
        for (int b = 0; b < n->blocks; b++) {                                              \
            const __m256i *w = (const __m256i *)(n->w1 + (size_t)b * HIDDEN_BLOCK * P);    \
            __m256i acc = _mm256_loadu_si256((const __m256i *)(n->c1 + b * HIDDEN_BLOCK)); \
            for (int p = 0; p < P / 2; p++)                                                \
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_loadu_si256(w + p),   \
                                                              pairs[p]));                  \
            __m256i h = _mm256_min_epi32(_mm256_max_epi32(_mm256_sra_epi32(acc, shift1),   \
                                                          zero), top);                     \
            const __m256i w2 = _mm256_cvtepi16_epi32(                                      \
                _mm_loadu_si128((const __m128i *)(n->w2 + b * HIDDEN_BLOCK)));             \
            out = _mm256_add_epi32(out, _mm256_mullo_epi32(h, w2));                        \
        }                                                                                  \
        __m128i o4 = _mm_add_epi32(_mm256_castsi256_si128(out),                            \
                                   _mm256_extracti128_si256(out, 1));                      \
        o4 = _mm_add_epi32(o4, _mm_shuffle_epi32(o4, _MM_SHUFFLE(1, 0, 3, 2)));            \
        o4 = _mm_add_epi32(o4, _mm_shuffle_epi32(o4, _MM_SHUFFLE(2, 3, 0, 1)));            \
        return output_unit(n, _mm_cvtsi128_si32(o4), k);                                   \
    }

#define DEFINE_CORRECTION_SSE2(P)                                                          \
    static inline int64_t correction_sse2_##P(const Net *n, const int16_t *x, int k) {    \
        __m128i pairs[P / 2];                                                              \
        for (int p = 0; p < P / 2; p++) {                                                  \
            int32_t pair;                                                                  \
            memcpy(&pair, x + 2 * p, sizeof pair);                                         \
            pairs[p] = _mm_set1_epi32(pair);                                               \
        }                                                                                  \
        const __m128i shift1 = _mm_cvtsi32_si128(n->shift1);                               \
        const __m128i zero = _mm_setzero_si128();                                          \
        const __m128i top = _mm_set1_epi16(ACTIVATION_MAX);                                \
        __m128i out = zero;                                                                \
        for (int b = 0; b < n->blocks; b++) {                                              \
            const __m128i *w = (const __m128i *)(n->w1 + (size_t)b * HIDDEN_BLOCK * P);    \
            __m128i lo = _mm_loadu_si128((const __m128i *)(n->c1 + b * HIDDEN_BLOCK));     \
            __m128i hi = _mm_loadu_si128((const __m128i *)(n->c1 + b * HIDDEN_BLOCK + 4)); \
            for (int p = 0; p < P / 2; p++) {                                              \
                lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_loadu_si128(w + 2 * p), pairs[p])); \
                hi = _mm_add_epi32(hi,                                                     \
                                   _mm_madd_epi16(_mm_loadu_si128(w + 2 * p + 1), pairs[p])); \
            }                                                                              \
            __m128i h = _mm_packs_epi32(_mm_sra_epi32(lo, shift1), _mm_sra_epi32(hi, shift1)); \
            h = _mm_min_epi16(_mm_max_epi16(h, zero), top);                                \
            const __m128i w2 = _mm_loadu_si128((const __m128i *)(n->w2 + b * HIDDEN_BLOCK)); \
            out = _mm_add_epi32(out, _mm_madd_epi16(h, w2));                               \
        }                                                                                  \
        out = _mm_add_epi32(out, _mm_shuffle_epi32(out, _MM_SHUFFLE(1, 0, 3, 2)));         \
        out = _mm_add_epi32(out, _mm_shuffle_epi32(out, _MM_SHUFFLE(2, 3, 0, 1)));         \
        return output_unit(n, _mm_cvtsi128_si32(out), k);                                  \
    }
#endif

#define DEFINE_CORRECTION_PORTABLE(P)                                                      \
    static inline int64_t correction_portable_##P(const Net *n, const int16_t *x, int k) { \
        int32_t o = 0;                                                                     \
        for (int i = 0; i < n->hidden; i++) {                                              \
            const int16_t *row = n->rows + (size_t)i * P;                                  \
            int32_t acc = 0;                                                               \
            for (int j = 0; j < P; j++) acc += (int32_t)row[j] * (int32_t)x[j];            \
            acc = (acc + n->c1[i]) >> n->shift1;                                           \
            acc = acc < 0 ? 0 : acc > ACTIVATION_MAX ? ACTIVATION_MAX : acc;               \
            o += (int32_t)n->w2[i] * acc;                                                  \
        }                                                                                  \
        return output_unit(n, o, k);                                                       \
    }

static inline uint64_t stat_next(uint64_t a, int64_t e) {
    uint64_t mag = e < 0 ? (uint64_t)(-(e + 1)) + 1 : (uint64_t)e;
    if (mag > (uint64_t)FEATURE_CLAMP) mag = (uint64_t)FEATURE_CLAMP;
    return a + mag - (a >> SCALE_STAT_SHIFT);
}

typedef void (*ResidualLoop)(const Net *, const int64_t *, const int64_t *, const int64_t *,
                             int64_t *, Py_ssize_t, int, int);
typedef Py_ssize_t (*RestoreLoop)(const Net *, int64_t *, int64_t *, const int64_t *,
                                  const int32_t *, int, int, int64_t, int64_t, Py_ssize_t, int,
                                  int);

/* The sequential loops, one pair per padded width and per build of the correction (TARGET is
 * the build's function attribute, VARIANT its name). The results are identical. */
#define DEFINE_LOOPS(P, VARIANT, TARGET)                                                   \
    TARGET static void residual_loop_##VARIANT##_##P(                                      \
        const Net *net, const int64_t *e, const int64_t *s, const int64_t *cross,          \
        int64_t *out, Py_ssize_t n, int width, int mean_log2) {                            \
        int16_t x[MAX_PADDED] = {0};                                                       \
        uint64_t a = (uint64_t)1 << (mean_log2 + 3);                                       \
        int kprev = -1;                                                                    \
        for (Py_ssize_t t = 0; t < n; t++) {                                               \
            int k = bitlen64(a);                                                           \
            next_features(e, s, cross, n, t, s[t] - e[t], net->history, k, kprev, width, x); \
            kprev = k;                                                                     \
            out[t] = e[t] - correction_##VARIANT##_##P(net, x, k);                         \
            a = stat_next(a, e[t]);                                                        \
        }                                                                                  \
    }                                                                                      \
    TARGET static Py_ssize_t restore_loop_##VARIANT##_##P(                                 \
        const Net *net, int64_t *s, int64_t *e, const int64_t *cross, const int32_t *coefs, \
        int order, int shift, int64_t lo, int64_t hi, Py_ssize_t n, int width,             \
        int mean_log2) {                                                                   \
        int16_t x[MAX_PADDED] = {0};                                                       \
        uint64_t a = (uint64_t)1 << (mean_log2 + 3);                                       \
        int kprev = -1;                                                                    \
        for (Py_ssize_t t = 0; t < n; t++) {                                               \
            int k = bitlen64(a);                                                           \
            int64_t pred = predict(s, t, coefs, order, shift);                             \
            next_features(e, s, cross, n, t, pred, net->history, k, kprev, width, x);      \
            kprev = k;                                                                     \
            int64_t et = s[t] + correction_##VARIANT##_##P(net, x, k);                     \
            int64_t v = et + pred;                                                         \
            if (v < lo || v > hi) return t;                                                \
            e[t] = et;                                                                     \
            s[t] = v;                                                                      \
            a = stat_next(a, et);                                                          \
        }                                                                                  \
        return -1;                                                                         \
    }

#define DEFINE_VARIANT(VARIANT, TARGET)                                                    \
    DEFINE_LOOPS(8, VARIANT, TARGET) DEFINE_LOOPS(16, VARIANT, TARGET)                     \
    DEFINE_LOOPS(24, VARIANT, TARGET) DEFINE_LOOPS(32, VARIANT, TARGET)                    \
    DEFINE_LOOPS(40, VARIANT, TARGET) DEFINE_LOOPS(48, VARIANT, TARGET)                    \
    DEFINE_LOOPS(56, VARIANT, TARGET) DEFINE_LOOPS(64, VARIANT, TARGET)                    \
    DEFINE_LOOPS(72, VARIANT, TARGET)                                                      \
    static const ResidualLoop RESIDUAL_LOOPS_##VARIANT[] = {                               \
        residual_loop_##VARIANT##_8, residual_loop_##VARIANT##_16,                         \
        residual_loop_##VARIANT##_24, residual_loop_##VARIANT##_32,                        \
        residual_loop_##VARIANT##_40, residual_loop_##VARIANT##_48,                        \
        residual_loop_##VARIANT##_56, residual_loop_##VARIANT##_64,                        \
        residual_loop_##VARIANT##_72};                                                     \
    static const RestoreLoop RESTORE_LOOPS_##VARIANT[] = {                                 \
        restore_loop_##VARIANT##_8, restore_loop_##VARIANT##_16,                           \
        restore_loop_##VARIANT##_24, restore_loop_##VARIANT##_32,                          \
        restore_loop_##VARIANT##_40, restore_loop_##VARIANT##_48,                          \
        restore_loop_##VARIANT##_56, restore_loop_##VARIANT##_64,                          \
        restore_loop_##VARIANT##_72};

DEFINE_CORRECTION_PORTABLE(8) DEFINE_CORRECTION_PORTABLE(16) DEFINE_CORRECTION_PORTABLE(24)
DEFINE_CORRECTION_PORTABLE(32) DEFINE_CORRECTION_PORTABLE(40) DEFINE_CORRECTION_PORTABLE(48)
DEFINE_CORRECTION_PORTABLE(56) DEFINE_CORRECTION_PORTABLE(64) DEFINE_CORRECTION_PORTABLE(72)
DEFINE_VARIANT(portable, )
#if defined(X86_PATHS)
DEFINE_CORRECTION_SSE2(8) DEFINE_CORRECTION_SSE2(16) DEFINE_CORRECTION_SSE2(24)
DEFINE_CORRECTION_SSE2(32) DEFINE_CORRECTION_SSE2(40) DEFINE_CORRECTION_SSE2(48)
DEFINE_CORRECTION_SSE2(56) DEFINE_CORRECTION_SSE2(64) DEFINE_CORRECTION_SSE2(72)
DEFINE_VARIANT(sse2, )
DEFINE_CORRECTION_AVX2(8) DEFINE_CORRECTION_AVX2(16) DEFINE_CORRECTION_AVX2(24)
DEFINE_CORRECTION_AVX2(32) DEFINE_CORRECTION_AVX2(40) DEFINE_CORRECTION_AVX2(48)
DEFINE_CORRECTION_AVX2(56) DEFINE_CORRECTION_AVX2(64) DEFINE_CORRECTION_AVX2(72)
DEFINE_VARIANT(avx2, AVX2_TARGET)
#endif

/* The builds of the model loops this CPU can run, fastest last; the module uses the last one
 * unless model_loops(name) picks another (for tests). */
typedef struct {
    const char *name;
    const ResidualLoop *residual;
    const RestoreLoop *restore;
} LoopVariant;

static LoopVariant VARIANTS[3] = {{"portable", RESIDUAL_LOOPS_portable, RESTORE_LOOPS_portable}};
static int variant_count = 1, variant_used = 0;
#define RESIDUAL_LOOPS (VARIANTS[variant_used].residual)
#define RESTORE_LOOPS (VARIANTS[variant_used].restore)

static void select_cascade(const char *variant);  /* the CASCADE stages follow the choice */

static void choose_loops(void) {
#if defined(X86_PATHS)
    VARIANTS[variant_count++] = (LoopVariant){"sse2", RESIDUAL_LOOPS_sse2, RESTORE_LOOPS_sse2};
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        VARIANTS[variant_count++] = (LoopVariant){"avx2", RESIDUAL_LOOPS_avx2, RESTORE_LOOPS_avx2};
#endif
    variant_used = variant_count - 1;
    select_cascade(VARIANTS[variant_used].name);
}

/* model_loops([name]) -> (name in use, names available): picks a build of the model loops. */
static PyObject *model_loops(PyObject *self, PyObject *args) {
    const char *name = NULL;
    if (!PyArg_ParseTuple(args, "|s", &name)) return NULL;
    if (name) {
        int found = -1;
        for (int i = 0; i < variant_count; i++)
            if (strcmp(VARIANTS[i].name, name) == 0) found = i;
        if (found < 0) {
            PyErr_Format(PyExc_ValueError, "no model loops named %s on this CPU", name);
            return NULL;
        }
        variant_used = found;
        select_cascade(VARIANTS[variant_used].name);
    }
    PyObject *names = PyTuple_New(variant_count);
    if (!names) return NULL;
    for (int i = 0; i < variant_count; i++) {
        PyObject *n = PyUnicode_FromString(VARIANTS[i].name);
        if (!n) { Py_DECREF(names); return NULL; }
        PyTuple_SET_ITEM(names, i, n);
    }
    return Py_BuildValue("(sN)", VARIANTS[variant_used].name, names);
}

/* The autocorrelation loop is compiled twice on x86-64 Linux (AVX2 and baseline) by GCC. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(VAELAC_PLAIN_C)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

static int check_model_args(int width, int mean_log2) {
    if (width < 1 || width > 33 || mean_log2 < 0 || mean_log2 > 55) {
        PyErr_SetString(PyExc_ValueError, "model: width 1..33, initial_mean_log2 0..55");
        return -1;
    }
    return 0;
}

/* An optional int64 array of n values (None -> NULL). */
static int get_cross(PyObject *obj, Py_buffer *view, Py_ssize_t n, const int64_t **ptr) {
    *ptr = NULL;
    if (obj == Py_None) return 0;
    if (get_buffer(obj, view, 0, 8, "cross") < 0) return -1;
    if (view->len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "cross must have one value per sample");
        PyBuffer_Release(view);
        return -1;
    }
    *ptr = view->buf;
    return 0;
}

/* model_features(e, s, cross, width, mean_log2, history, out): out (int16, n x (2H+5)) gets
 * the network's input for every sample (training uses it; the encoder's prediction is s - e). */
static PyObject *model_features(PyObject *self, PyObject *args) {
    PyObject *e_obj, *s_obj, *x_obj, *o_obj;
    int width, mean_log2, history;
    if (!PyArg_ParseTuple(args, "OOOiiiO", &e_obj, &s_obj, &x_obj, &width, &mean_log2, &history,
                          &o_obj)) return NULL;
    if (check_model_args(width, mean_log2) < 0) return NULL;
    if (history < 1 || history > MAX_HISTORY) {
        PyErr_SetString(PyExc_ValueError, "history must be 1..32");
        return NULL;
    }
    Py_buffer e, s, o, xv;
    if (get_buffer(e_obj, &e, 0, 8, "e") < 0) return NULL;
    Py_ssize_t n = e.len / 8, F = 2 * history + 5;
    const int64_t *cross;
    if (get_cross(x_obj, &xv, n, &cross) < 0) { PyBuffer_Release(&e); return NULL; }
    if (get_buffer(s_obj, &s, 0, 8, "s") < 0) {
        PyBuffer_Release(&e); if (cross) PyBuffer_Release(&xv); return NULL;
    }
    if (get_buffer(o_obj, &o, 1, 2, "out") < 0) {
        PyBuffer_Release(&e); PyBuffer_Release(&s); if (cross) PyBuffer_Release(&xv);
        return NULL;
    }
    PyObject *result = NULL;
    if (s.len != e.len || o.len / 2 != n * F) {
        PyErr_SetString(PyExc_ValueError, "model_features: shapes disagree");
    } else {
        const int64_t *ep = e.buf, *sp = s.buf;
        int16_t *op = o.buf;
        Py_BEGIN_ALLOW_THREADS
        uint64_t a = (uint64_t)1 << (mean_log2 + 3);
        for (Py_ssize_t t = 0; t < n; t++) {
            features(ep, sp, cross, n, t, sp[t] - ep[t], history, bitlen64(a), width, op + t * F);
            a = stat_next(a, ep[t]);
        }
        Py_END_ALLOW_THREADS
        result = Py_None; Py_INCREF(result);
    }
    PyBuffer_Release(&e); PyBuffer_Release(&s); PyBuffer_Release(&o);
    if (cross) PyBuffer_Release(&xv);
    return result;
}

/* model_residual(e, s, cross, width, mean_log2, net, out): out = e - correction (encoder). */
static PyObject *model_residual(PyObject *self, PyObject *args) {
    PyObject *e_obj, *s_obj, *x_obj, *n_obj, *o_obj;
    int width, mean_log2;
    if (!PyArg_ParseTuple(args, "OOOiiOO", &e_obj, &s_obj, &x_obj, &width, &mean_log2, &n_obj,
                          &o_obj)) return NULL;
    if (check_model_args(width, mean_log2) < 0) return NULL;
    Net net;
    if (get_net(n_obj, &net) < 0) return NULL;
    Py_buffer e, s, o, xv;
    if (get_buffer(e_obj, &e, 0, 8, "e") < 0) { release_net(&net); return NULL; }
    const int64_t *cross;
    if (get_cross(x_obj, &xv, e.len / 8, &cross) < 0) {
        PyBuffer_Release(&e); release_net(&net); return NULL;
    }
    if (get_buffer(s_obj, &s, 0, 8, "s") < 0) {
        PyBuffer_Release(&e); release_net(&net); if (cross) PyBuffer_Release(&xv); return NULL;
    }
    if (get_buffer(o_obj, &o, 1, 8, "out") < 0) {
        PyBuffer_Release(&e); PyBuffer_Release(&s); release_net(&net);
        if (cross) PyBuffer_Release(&xv);
        return NULL;
    }
    PyObject *result = NULL;
    if (s.len != e.len || o.len != e.len) {
        PyErr_SetString(PyExc_ValueError, "model_residual: lengths disagree");
    } else {
        Py_BEGIN_ALLOW_THREADS
        RESIDUAL_LOOPS[net.padded / FEATURE_PAD - 1](&net, e.buf, s.buf, cross, o.buf,
                                                     e.len / 8, width, mean_log2);
        Py_END_ALLOW_THREADS
        result = Py_None; Py_INCREF(result);
    }
    PyBuffer_Release(&e); PyBuffer_Release(&s); PyBuffer_Release(&o); release_net(&net);
    if (cross) PyBuffer_Release(&xv);
    return result;
}

/* model_restore(buf, coefs, order, shift, lo, hi, width, mean_log2, net, cross, e_out)
 * -> first bad index or -1: buf holds the coded residuals and receives the samples; e_out
 * receives the LPC residuals (the next channel's cross input) (decoder, §8.4). */
static PyObject *model_restore(PyObject *self, PyObject *args) {
    PyObject *r_obj, *c_obj, *n_obj, *x_obj, *e_obj;
    int order, shift, width, mean_log2;
    long long lo, hi;
    if (!PyArg_ParseTuple(args, "OOiiLLiiOOO", &r_obj, &c_obj, &order, &shift, &lo, &hi, &width,
                          &mean_log2, &n_obj, &x_obj, &e_obj)) return NULL;
    if (check_model_args(width, mean_log2) < 0) return NULL;
    Net net;
    if (get_net(n_obj, &net) < 0) return NULL;
    Py_buffer r, c, ev, xv;
    if (get_buffer(r_obj, &r, 1, 8, "buf") < 0) { release_net(&net); return NULL; }
    Py_ssize_t n = r.len / 8;
    if (get_buffer(c_obj, &c, 0, 4, "coefs") < 0) {
        PyBuffer_Release(&r); release_net(&net); return NULL;
    }
    if (get_buffer(e_obj, &ev, 1, 8, "e_out") < 0) {
        PyBuffer_Release(&r); PyBuffer_Release(&c); release_net(&net); return NULL;
    }
    const int64_t *cross;
    if (get_cross(x_obj, &xv, n, &cross) < 0) {
        PyBuffer_Release(&r); PyBuffer_Release(&c); PyBuffer_Release(&ev); release_net(&net);
        return NULL;
    }
    Py_ssize_t bad = -2;
    if (ev.len != r.len) {
        PyErr_SetString(PyExc_ValueError, "e_out must have one value per sample");
    } else if (check_lpc_args(&c, order, shift) == 0) {
        Py_BEGIN_ALLOW_THREADS
        bad = RESTORE_LOOPS[net.padded / FEATURE_PAD - 1](&net, r.buf, ev.buf, cross, c.buf,
                                                          order, shift, lo, hi, n, width,
                                                          mean_log2);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&r); PyBuffer_Release(&c); PyBuffer_Release(&ev); release_net(&net);
    if (cross) PyBuffer_Release(&xv);
    if (bad == -2) return NULL;
    return PyLong_FromSsize_t(bad);
}

/* ------------------------------------------------------ encoder analysis -- */

/* Autocorrelation for the encoder's LPC search (not normative): r[k] = sum of x[i] * x[i+k],
 * each r[k] summed in increasing i, one rounding per product and per addition (no fusing,
 * -ffp-contract=off), exactly as the pure-Python twin does. The lags are independent sums, so
 * the loop over k vectorises without reordering any sum: the result does not depend on the
 * CPU or on a BLAS library. */
VECTOR_CLONES static void autocorrelation_loop(const double *x, Py_ssize_t n, int max_lag,
                                               double *r) {
    for (int k = 0; k <= max_lag; k++) r[k] = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const double xi = x[i];
        Py_ssize_t lags = n - 1 - i < max_lag ? n - 1 - i : max_lag;
        for (Py_ssize_t k = 0; k <= lags; k++) r[k] += xi * x[i + k];
    }
}

static PyObject *autocorrelation(PyObject *self, PyObject *args) {
    PyObject *x_obj, *r_obj;
    int max_lag;
    if (!PyArg_ParseTuple(args, "OiO", &x_obj, &max_lag, &r_obj)) return NULL;
    if (max_lag < 0 || max_lag > 32) {
        PyErr_SetString(PyExc_ValueError, "autocorrelation: max_lag must be 0..32");
        return NULL;
    }
    Py_buffer x, r;
    if (get_buffer(x_obj, &x, 0, 8, "x") < 0) return NULL;
    if (get_buffer(r_obj, &r, 1, 8, "r") < 0) { PyBuffer_Release(&x); return NULL; }
    PyObject *result = NULL;
    if (r.len / 8 < max_lag + 1) {
        PyErr_SetString(PyExc_ValueError, "autocorrelation: r too small");
    } else {
        const double *xp = x.buf;
        double *rp = r.buf;
        Py_ssize_t n = x.len / 8;
        Py_BEGIN_ALLOW_THREADS
        autocorrelation_loop(xp, n, max_lag, rp);
        Py_END_ALLOW_THREADS
        result = Py_None; Py_INCREF(result);
    }
    PyBuffer_Release(&x); PyBuffer_Release(&r);
    return result;
}

/* Levinson-Durbin for the encoder's LPC search (not normative: it only chooses predictors).
 * Operation for operation the pure-Python twin's loop, each step rounded to double and never
 * fused (the extension is built with -ffp-contract=off), so both backends choose the same
 * predictors and the encoder's output does not depend on the backend. */
static PyObject *levinson(PyObject *self, PyObject *args) {
    PyObject *r_obj, *c_obj, *e_obj;
    int max_order;
    if (!PyArg_ParseTuple(args, "OiOO", &r_obj, &max_order, &c_obj, &e_obj)) return NULL;
    if (max_order < 1 || max_order > 32) {
        PyErr_SetString(PyExc_ValueError, "levinson: max_order must be 1..32");
        return NULL;
    }
    Py_buffer r, c, e;
    if (get_buffer(r_obj, &r, 0, 8, "r") < 0) return NULL;
    if (get_buffer(c_obj, &c, 1, 8, "coefs") < 0) { PyBuffer_Release(&r); return NULL; }
    if (get_buffer(e_obj, &e, 1, 8, "errors") < 0) {
        PyBuffer_Release(&r); PyBuffer_Release(&c); return NULL;
    }
    PyObject *result = NULL;
    if (r.len / 8 < max_order + 1 || c.len / 8 < (Py_ssize_t)max_order * max_order
        || e.len / 8 < max_order + 1) {
        PyErr_SetString(PyExc_ValueError, "levinson: buffers too small");
    } else {
        const double *rp = r.buf;
        double *coefs = c.buf, *errors = e.buf;
        double a[32], next[32];
        double err = rp[0] * (1 + 1e-9) + 1e-12;
        errors[0] = err;
        for (int m = 1; m <= max_order; m++) {
            double acc = rp[m];
            for (int j = 0; j < m - 1; j++) acc -= a[j] * rp[m - 1 - j];
            double k = acc / err;
            for (int j = 0; j < m - 1; j++) next[j] = a[j] - k * a[m - 2 - j];
            next[m - 1] = k;
            for (int j = 0; j < m; j++) a[j] = next[j];
            double keep = 1 - k * k;
            if (1e-12 > keep) keep = 1e-12; /* Python's max(keep, 1e-12), NaN included */
            err *= keep;
            errors[m] = err;
            for (int j = 0; j < max_order; j++)
                coefs[(Py_ssize_t)(m - 1) * max_order + j] = j < m ? a[j] : 0.0;
        }
        result = Py_None; Py_INCREF(result);
    }
    PyBuffer_Release(&r); PyBuffer_Release(&c); PyBuffer_Release(&e);
    return result;
}

/* quantize(lpc, precision, out) -> (shift, coef_bits): the encoder's coefficient quantisation
 * (not normative), operation for operation the Python twin: all zeros if any coefficient is
 * not finite or all are 0, else error feedback, round half to even (nearbyint in the default
 * rounding mode, as Python's round), clamped to precision signed bits. */
static PyObject *quantize(PyObject *self, PyObject *args) {
    PyObject *l_obj, *o_obj;
    int precision;
    if (!PyArg_ParseTuple(args, "OiO", &l_obj, &precision, &o_obj)) return NULL;
    if (precision < 2 || precision > 16) {
        PyErr_SetString(PyExc_ValueError, "quantize: precision must be 2..16");
        return NULL;
    }
    Py_buffer l, o;
    if (get_buffer(l_obj, &l, 0, 8, "lpc") < 0) return NULL;
    if (get_buffer(o_obj, &o, 1, 4, "out") < 0) { PyBuffer_Release(&l); return NULL; }
    Py_ssize_t n = l.len / 8;
    if (o.len / 4 < n) {
        PyBuffer_Release(&l); PyBuffer_Release(&o);
        PyErr_SetString(PyExc_ValueError, "quantize: out too small");
        return NULL;
    }
    const double *c = l.buf;
    int32_t *q = o.buf;
    double cmax = 0.0;
    int finite = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        finite &= isfinite(c[i]) != 0;
        if (fabs(c[i]) > cmax) cmax = fabs(c[i]);
    }
    int shift = 0, coef_bits = 1;
    if (!(cmax > 0) || !finite) {
        for (Py_ssize_t i = 0; i < n; i++) q[i] = 0;
    } else {
        int exponent;
        frexp(cmax, &exponent);
        shift = precision - 1 - exponent;
        shift = shift < 0 ? 0 : shift > MAX_LPC_SHIFT ? MAX_LPC_SHIFT : shift;
        const double qmax = (double)((1 << (precision - 1)) - 1);
        const double scale = (double)((int64_t)1 << shift);
        double error = 0.0;
        int32_t magnitude = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            error += c[i] * scale;
            double v = nearbyint(error);
            v = v > qmax ? qmax : v < -qmax - 1 ? -qmax - 1 : v;
            q[i] = (int32_t)v;
            error -= v;
            int32_t m = q[i] >= 0 ? q[i] : -q[i] - 1;
            if (m > magnitude) magnitude = m;
        }
        coef_bits = bitlen64((uint64_t)magnitude) + 1;
        if (coef_bits > MAX_COEF_BITS) coef_bits = MAX_COEF_BITS;
    }
    PyBuffer_Release(&l); PyBuffer_Release(&o);
    return Py_BuildValue("(ii)", shift, coef_bits);
}

/* affine(weights, x, biases, out): out[j] = biases[j] + sum_i weights[j][i] * x[i], weights
 * int16 row-major (rows x cols), x int64 (cols), biases and out int32 (rows). A model's latent
 * inputs folded into its first layer's biases once per subframe (§8.3); the model loader's
 * bounds (§8.1) keep every sum within int32. */
static PyObject *affine(PyObject *self, PyObject *args) {
    PyObject *w_obj, *x_obj, *b_obj, *o_obj;
    if (!PyArg_ParseTuple(args, "OOOO", &w_obj, &x_obj, &b_obj, &o_obj)) return NULL;
    Py_buffer w, x, b, o;
    if (get_buffer(w_obj, &w, 0, 2, "weights") < 0) return NULL;
    if (get_buffer(x_obj, &x, 0, 8, "x") < 0) { PyBuffer_Release(&w); return NULL; }
    if (get_buffer(b_obj, &b, 0, 4, "biases") < 0) {
        PyBuffer_Release(&w); PyBuffer_Release(&x); return NULL;
    }
    if (get_buffer(o_obj, &o, 1, 4, "out") < 0) {
        PyBuffer_Release(&w); PyBuffer_Release(&x); PyBuffer_Release(&b); return NULL;
    }
    const Py_ssize_t rows = b.len / 4, cols = x.len / 8;
    const int ok = o.len / 4 == rows && w.len / 2 == rows * cols;
    if (ok) {
        const int16_t *wp = w.buf;
        const int64_t *xp = x.buf;
        const int32_t *bp = b.buf;
        int32_t *op = o.buf;
        for (Py_ssize_t j = 0; j < rows; j++) {
            int64_t acc = bp[j];
            for (Py_ssize_t i = 0; i < cols; i++) acc += (int64_t)wp[j * cols + i] * xp[i];
            op[j] = (int32_t)acc;
        }
    } else {
        PyErr_SetString(PyExc_ValueError, "affine: weights, x, biases and out do not agree");
    }
    PyBuffer_Release(&w); PyBuffer_Release(&x); PyBuffer_Release(&b); PyBuffer_Release(&o);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------ CASCADE stages (§6.4) -- */

#define MAX_CASCADE_STAGES 4
#define MAX_CASCADE_TAPS 1024
#define MAX_CROSS_TAPS 32
#define MAX_CASCADE_SHIFT 47
#define MAX_CASCADE_SAMPLES 65535
#define CASCADE_HISTORY_MAX 32767
#define MAX_MIX_SHIFT 14 /* §6.5 */
#define MAX_MIX_STEP 63
#define MIX_INPUT_MAX ((int64_t)1 << 36)
#define MAX_MIX_BIAS 16

/* v clamped to [-bound, bound] */
static inline int64_t clamp_to(int64_t v, int64_t bound) {
    return v > bound ? bound : v < -bound ? -bound : v;
}

/* §6.4's cross prediction pc at sample t, from the first `reach` taps (0 without any) */
static ALWAYS_INLINE int64_t cross_predict(const int32_t *cw, const int32_t *cross_clamped,
                                           Py_ssize_t t, int reach, int cross_shift) {
    if (!reach) return 0;
    int64_t acc = 0;
    for (int j = 0; j < reach; j++) acc += (int64_t)cw[j] * cross_clamped[t - j];
    return acc >> cross_shift;
}

/* §6.5's constant input, bias * 2^(mix_bias-1), 0 when mix_bias is 0; a multiply, since << of
 * a negative value is undefined in C */
static ALWAYS_INLINE int64_t mix_bias_term(int64_t bias_weight, int mix_bias) {
    return mix_bias ? bias_weight * ((int64_t)1 << (mix_bias - 1)) : 0;
}

static inline int64_t clamp_history(int64_t v) { return clamp_to(v, CASCADE_HISTORY_MAX); }

static inline int32_t sign64(int64_t v) { return (v > 0) - (v < 0); }

#define CASCADE_RULE_SIGN 0
#define CASCADE_RULE_SCALED 1

/* A stage's weights are kept split, w = 2048 * hi + lo with 0 <= lo < 2048: |w| < 2**26 (§6.4)
 * puts hi in int16, and with int16 histories both halves of the sum are vpmaddwd products.
 * An update (|delta| <= 1020 < 2048) adds to lo and carries at most one into hi. */
#define WEIGHT_LOW_BITS 11

typedef struct {
    int taps, shift, step, rule;
    int16_t *hi, *lo; /* the weights, split as above */
    int16_t *h;       /* history, newest first, twice over (h[pos .. pos+taps-1] is the window);
                         int16: clamped to ±32767 */
    int16_t *d;       /* SCALED: the update of each tap, kept like h (|d| <= 4 * 255) */
    int32_t avg;      /* SCALED: running mean of |clamped input| */
    int pos;
    /* SCALED stages update their weights in the pass that sums the next sample's prediction
     * (one pass over the weights instead of two): the sign of the last error, the d window
     * it applies to (where pos was), and the last input, whose entry into d (and the halving
     * of older entries, which lie in that window) waits until after the update. */
    int32_t pending_sign, pending_x;
    int pending_pos, pending;
} CascadeStage;

/* sum over j of w[j] * h[j], exact in 64 bits: |hi * h| and the sums of lo * h over 256 taps
 * stay within int32, |w * h| < 2**41 and the total within 2**51. */
static ALWAYS_INLINE int64_t stage_sum_portable(const int16_t *RESTRICT hi,
                                                const int16_t *RESTRICT lo,
                                                const int16_t *RESTRICT h, int taps) {
    int64_t high = 0, low = 0;
    for (int j = 0; j < taps; j++) {
        high += (int32_t)hi[j] * h[j];
        low += (int32_t)lo[j] * h[j];
    }
    return high * (1 << WEIGHT_LOW_BITS) + low;
}

#if defined(X86_PATHS)
/* The same sum, 16 taps a step: vpmaddwd gives pair sums of hi * h (|.| < 2**31, widened to
 * 64 bits at once) and of lo * h (|.| < 2**27, summed in 32 bits over 256 taps at most, then
 * widened). */
/* The end of the run of whole 16-tap steps from j in which the lo * h sums stay in 32 bits:
 * 256 taps at most. */
static inline int sum_run_end(int j, int taps) {
    return (taps - j) / 16 > 16 ? j + 256 : j + (taps - j) / 16 * 16;
}

/* 16 taps' products added to the sums: hi * h pair sums widened to 64 bits at once, lo * h
 * pair sums to the run's 32-bit sum. */
__attribute__((target("avx2")))
static inline void add_products_avx2(__m256i *high, __m256i *low32, __m256i w_hi, __m256i w_lo,
                                     __m256i x) {
    const __m256i ph = _mm256_madd_epi16(w_hi, x);
    *high = _mm256_add_epi64(*high, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(ph)));
    *high = _mm256_add_epi64(*high, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(ph, 1)));
    *low32 = _mm256_add_epi32(*low32, _mm256_madd_epi16(w_lo, x));
}

/* A run's 32-bit lo * h sums widened and added to the 64-bit ones. */
__attribute__((target("avx2")))
static inline __m256i add_run_avx2(__m256i low, __m256i low32) {
    low = _mm256_add_epi64(low, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(low32)));
    return _mm256_add_epi64(low, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(low32, 1)));
}

/* The lanes' 2048 * high + low, then the four lanes added in registers. */
__attribute__((target("avx2")))
static inline int64_t lanes_total_avx2(__m256i high, __m256i low) {
    const __m256i lanes = _mm256_add_epi64(_mm256_slli_epi64(high, WEIGHT_LOW_BITS), low);
    __m128i two = _mm_add_epi64(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
    two = _mm_add_epi64(two, _mm_unpackhi_epi64(two, two));
    return _mm_cvtsi128_si64(two);
}

__attribute__((target("avx2")))
static inline int64_t stage_sum_avx2(const int16_t *hi, const int16_t *lo, const int16_t *h,
                                     int taps) {
    __m256i high = _mm256_setzero_si256(), low = _mm256_setzero_si256();
    int j = 0;
    while (j + 16 <= taps) {
        const int end = sum_run_end(j, taps);
        __m256i low32 = _mm256_setzero_si256();
        for (; j < end; j += 16)
            add_products_avx2(&high, &low32, _mm256_loadu_si256((const __m256i *)(hi + j)),
                              _mm256_loadu_si256((const __m256i *)(lo + j)),
                              _mm256_loadu_si256((const __m256i *)(h + j)));
        low = add_run_avx2(low, low32);
    }
    int64_t sum = lanes_total_avx2(high, low);
    for (; j < taps; j++) sum += (int64_t)hi[j] * h[j] * (1 << WEIGHT_LOW_BITS) + lo[j] * h[j];
    return sum;
}
#endif

/* w[j] += delta[j], on the split weights: lo + delta lies in [-1020, 3067], its arithmetic
 * shift by 11 is the carry (-1, 0 or 1). Written for the compiler to vectorise in int16. */
#define ADD_TO_WEIGHTS(hi, lo, taps, DELTA)                                                   \
    for (int j = 0; j < (taps); j++) {                                                        \
        const int16_t t = (int16_t)((lo)[j] + (DELTA));                                       \
        (hi)[j] = (int16_t)((hi)[j] + (t >> WEIGHT_LOW_BITS));                                \
        (lo)[j] = (int16_t)(t & ((1 << WEIGHT_LOW_BITS) - 1));                                \
    }

/* SIGN: w[j] += step * sign(error) * sign(h[j]); delta = step * sign(error), 0 for none. */
static ALWAYS_INLINE void stage_adapt(int16_t *RESTRICT hi, int16_t *RESTRICT lo,
                                      const int16_t *RESTRICT h, int taps, int16_t delta) {
    ADD_TO_WEIGHTS(hi, lo, taps, delta * ((h[j] > 0) - (h[j] < 0)))
}

/* SCALED: w[j] += sign(error) * d[j], the last sample's update (its sign, the d window at pos),
 * fused with the sum of the next prediction (h window at the new pos): the values of the
 * update, then stage_sum_portable, in one pass. Branch-free in the sign (-1, 0 or 1), which is
 * as good as random: a branch cost a misprediction a stage a sample. (d ^ m) - m negates d
 * where m is all ones. */
static ALWAYS_INLINE int64_t stage_fused_portable(int16_t *RESTRICT hi, int16_t *RESTRICT lo,
                                                  const int16_t *RESTRICT d,
                                                  const int16_t *RESTRICT h, int taps,
                                                  int32_t sign) {
    const int16_t m = (int16_t)-(sign < 0), keep = (int16_t)-(sign != 0);
    int64_t high = 0, low = 0;
    for (int j = 0; j < taps; j++) {
        const int16_t t = (int16_t)(lo[j] + (((d[j] ^ m) - m) & keep));
        const int16_t w_hi = (int16_t)(hi[j] + (t >> WEIGHT_LOW_BITS));
        const int16_t w_lo = (int16_t)(t & ((1 << WEIGHT_LOW_BITS) - 1));
        hi[j] = w_hi;
        lo[j] = w_lo;
        high += (int32_t)w_hi * h[j];
        low += (int32_t)w_lo * h[j];
    }
    return high * (1 << WEIGHT_LOW_BITS) + low;
}

#if defined(X86_PATHS)
/* stage_fused_portable, 16 taps a step, the sums as stage_sum_avx2's. */
__attribute__((target("avx2")))
static inline int64_t stage_fused_avx2(int16_t *hi, int16_t *lo, const int16_t *d,
                                       const int16_t *h, int taps, int32_t sign) {
    const __m256i m = _mm256_set1_epi16((int16_t)-(sign < 0));
    const __m256i keep = _mm256_set1_epi16((int16_t)-(sign != 0));
    const __m256i low_mask = _mm256_set1_epi16((1 << WEIGHT_LOW_BITS) - 1);
    __m256i high = _mm256_setzero_si256(), low = _mm256_setzero_si256();
    int j = 0;
    while (j + 16 <= taps) {
        const int end = sum_run_end(j, taps);
        __m256i low32 = _mm256_setzero_si256();
        for (; j < end; j += 16) {
            const __m256i dv = _mm256_loadu_si256((const __m256i *)(d + j));
            const __m256i delta = _mm256_and_si256(
                _mm256_sub_epi16(_mm256_xor_si256(dv, m), m), keep);
            const __m256i t = _mm256_add_epi16(_mm256_loadu_si256((const __m256i *)(lo + j)),
                                               delta);
            const __m256i w_hi = _mm256_add_epi16(
                _mm256_loadu_si256((const __m256i *)(hi + j)),
                _mm256_srai_epi16(t, WEIGHT_LOW_BITS));
            const __m256i w_lo = _mm256_and_si256(t, low_mask);
            _mm256_storeu_si256((__m256i *)(hi + j), w_hi);
            _mm256_storeu_si256((__m256i *)(lo + j), w_lo);
            add_products_avx2(&high, &low32, w_hi, w_lo,
                              _mm256_loadu_si256((const __m256i *)(h + j)));
        }
        low = add_run_avx2(low, low32);
    }
    int64_t sum = lanes_total_avx2(high, low);
    if (j < taps)
        sum += stage_fused_portable(hi + j, lo + j, d + j, h + j, taps - j, sign);
    return sum;
}
#endif

/* SCALED (§6.4): the new input's update size from its magnitude against the running mean,
 * signed like it; the updates of the inputs 1, 2 and 8 samples older halve. */
static inline void scaled_shift_in(CascadeStage *s, int32_t x) {
    const int32_t a = x < 0 ? -x : x;
    const int32_t m = a > 3 * s->avg ? 4 * s->step
                    : 3 * a > 4 * s->avg ? 2 * s->step
                    : a > 0 ? s->step : 0;
    const int16_t value = (int16_t)(x > 0 ? m : -m);
    s->d[s->pos] = s->d[s->pos + s->taps] = value;
    static const int older[3] = {1, 2, 8};
    for (int i = 0; i < 3; i++) {
        if (older[i] >= s->taps) break;
        const int q = s->pos + older[i];
        const int twin = q < s->taps ? q + s->taps : q - s->taps;
        s->d[q] = (int16_t)(s->d[q] >> 1);
        s->d[twin] = s->d[q];
    }
    s->avg += (a - s->avg) >> 4;
}

/* One stage's prediction of the coming sample from its state (§6.4); a SCALED stage first
 * applies the last sample's pending update (see CascadeStage). These two steps are
 * cascade_body's, for cascade_many_body: the decoder's cascade_body keeps them written out,
 * since calling them made its loop 3-4 % slower (measured on real residuals). */
static ALWAYS_INLINE int64_t stage_predict(CascadeStage *s, int avx2) {
    int64_t sum;
    (void)avx2;
    if (s->rule == CASCADE_RULE_SCALED) {
        const int16_t *dw = s->d + s->pending_pos;
#if defined(X86_PATHS)
        if (avx2) sum = stage_fused_avx2(s->hi, s->lo, dw, s->h + s->pos, s->taps,
                                         s->pending_sign); else
#endif
        sum = stage_fused_portable(s->hi, s->lo, dw, s->h + s->pos, s->taps, s->pending_sign);
        if (s->pending) scaled_shift_in(s, s->pending_x);  /* after the update */
    } else {
#if defined(X86_PATHS)
        if (avx2) sum = stage_sum_avx2(s->hi, s->lo, s->h + s->pos, s->taps); else
#endif
        sum = stage_sum_portable(s->hi, s->lo, s->h + s->pos, s->taps);
    }
    return sum >> s->shift;
}

/* One stage's adaptation after the sample (§6.4): ``input`` is its u_k, ``error`` its
 * u_{k+1}. */
static ALWAYS_INLINE void stage_learn(CascadeStage *s, int64_t input, int64_t error) {
    const int32_t se = sign64(error);
    if (s->rule == CASCADE_RULE_SIGN)
        stage_adapt(s->hi, s->lo, s->h + s->pos, s->taps, (int16_t)(s->step * se));
    else {  /* the update and d's new entry wait for the next sample's sum (stage_predict) */
        s->pending_sign = se;
        s->pending_pos = s->pos;
    }
    s->pos = s->pos ? s->pos - 1 : s->taps - 1;
    const int32_t x = (int32_t)clamp_history(input);
    s->h[s->pos] = s->h[s->pos + s->taps] = (int16_t)x;
    if (s->rule == CASCADE_RULE_SCALED) {
        s->pending_x = x;
        s->pending = 1;
    }
}

/* The stages of §6.4 over one subframe, in place: forward (encoder) turns the LPC residual
 * into the coded residual, inverse (decoder) turns it back. cross_clamped / cross_sign: the
 * preceding subframe's LPC residual clamped to the history bound and its signs (computed once
 * per subframe), or NULL. Both directions compute the same predictions from the same state.
 * mix: NULL for CASCADE (§6.4); for MIXED_CASCADE (§6.5) {mix_shift, mix_step, mix_bias}:
 * the coded residual is the LPC residual less a learned weighting of the cross stage's and the
 * stages' predictions (and of a constant 2**(mix_bias - 1) if mix_bias > 0) instead of less
 * their sum. |weight| < 2**14 + 63 * 65535 < 2**23 and inputs are clamped to 2**36, so the
 * weighted sum of at most 6 stays within 2**62. */
static ALWAYS_INLINE void cascade_body(int64_t *buf, const int32_t *cross_clamped,
                                       const int32_t *cross_sign, Py_ssize_t n,
                                       int cross_taps, int cross_shift, int cross_step,
                                       CascadeStage *st, int stages, int inverse,
                                       const int *mix, int avx2) {
    int32_t cw[MAX_CROSS_TAPS] = {0};
    int64_t mw[MAX_CASCADE_STAGES + 1], bias_weight = 0;
    for (int j = 0; j <= stages; j++) mw[j] = mix ? (int64_t)1 << mix[0] : 0;
    if (!cross_clamped) cross_taps = 0;
    for (Py_ssize_t t = 0; t < n; t++) {
        const int reach = cross_taps < t + 1 ? cross_taps : (int)(t + 1);
        const int64_t pc = cross_predict(cw, cross_clamped, t, reach, cross_shift);
        int64_t p[MAX_CASCADE_STAGES], u[MAX_CASCADE_STAGES + 1];
        for (int k = 0; k < stages; k++) {
            CascadeStage *s = &st[k];
            int64_t sum;
            if (s->rule == CASCADE_RULE_SCALED) {
                const int16_t *dw = s->d + s->pending_pos;
#if defined(X86_PATHS)
                if (avx2) sum = stage_fused_avx2(s->hi, s->lo, dw, s->h + s->pos, s->taps,
                                                 s->pending_sign); else
#endif
                sum = stage_fused_portable(s->hi, s->lo, dw, s->h + s->pos, s->taps,
                                           s->pending_sign);
                if (s->pending) scaled_shift_in(s, s->pending_x);  /* after the update */
            } else {
#if defined(X86_PATHS)
                if (avx2) sum = stage_sum_avx2(s->hi, s->lo, s->h + s->pos, s->taps); else
#endif
                sum = stage_sum_portable(s->hi, s->lo, s->h + s->pos, s->taps);
            }
            p[k] = sum >> s->shift;
        }
        /* what the LPC residual r loses to the predictions: the mixer's weighting of them
         * (§6.5), or their sum (§6.4); the stage signals u then follow from r either way */
        int64_t q[MAX_CASCADE_STAGES + 1], total;
        if (mix) {
            int64_t acc = 0;
            for (int j = 0; j <= stages; j++) {
                q[j] = clamp_to(j ? p[j - 1] : pc, MIX_INPUT_MAX);
                acc += mw[j] * q[j];
            }
            total = (acc + mix_bias_term(bias_weight, mix[2])) >> mix[0];
        } else {
            total = pc;
            for (int k = 0; k < stages; k++) total += p[k];
        }
        const int64_t r = inverse ? buf[t] + total : buf[t];
        const int64_t e = r - total;
        buf[t] = inverse ? r : e;
        const int64_t v = r - pc;
        u[0] = v;
        for (int k = 0; k < stages; k++) u[k + 1] = u[k] - p[k];
        if (mix) {
            const int64_t delta = mix[1] * sign64(e);
            for (int j = 0; j <= stages; j++) mw[j] += delta * sign64(q[j]);
            bias_weight += delta;  /* unused when mix_bias is 0 */
        }
        const int32_t delta = cross_step * sign64(v);  /* 0 leaves the weights: no branch */
        for (int j = 0; j < reach; j++) cw[j] += delta * cross_sign[t - j];
        for (int k = 0; k < stages; k++) {
            CascadeStage *s = &st[k];
            const int32_t se = sign64(u[k + 1]);
            if (s->rule == CASCADE_RULE_SIGN)
                stage_adapt(s->hi, s->lo, s->h + s->pos, s->taps, (int16_t)(s->step * se));
            else {  /* the update and d's new entry wait for the next sample's sum (above) */
                s->pending_sign = se;
                s->pending_pos = s->pos;
            }
            s->pos = s->pos ? s->pos - 1 : s->taps - 1;
            const int32_t x = (int32_t)clamp_history(u[k]);
            s->h[s->pos] = s->h[s->pos + s->taps] = (int16_t)x;
            if (s->rule == CASCADE_RULE_SCALED) {
                s->pending_x = x;
                s->pending = 1;
            }
        }
    }
}

/* The encoder's forward run of several stage sets over one LPC residual (cascade_many): the
 * sets share the cross stage and their first ``shared`` stages, whose signals u_0 .. u_shared
 * are the same in every set (§6.4: a stage's input and error do not depend on the stages after
 * it, nor on the mixer), so those run once. Each set's own stages and mixer run as
 * cascade_body's. Forward only; out[v] receives set v's coded residual. */
typedef struct {
    CascadeStage st[MAX_CASCADE_STAGES];  /* the set's stages after the shared ones */
    int stages;                           /* how many */
    int mixed, mix[3];
    int64_t mw[MAX_CASCADE_STAGES + 1], bias_weight;
    int64_t *out;
} CascadeSet;

static ALWAYS_INLINE void cascade_many_body(const int64_t *buf, const int32_t *cross_clamped,
                                            const int32_t *cross_sign, Py_ssize_t n,
                                            int cross_taps, int cross_shift, int cross_step,
                                            CascadeStage *shared_st, int shared,
                                            CascadeSet *sets, int set_count, int avx2) {
    int32_t cw[MAX_CROSS_TAPS] = {0};
    if (!cross_clamped) cross_taps = 0;
    for (Py_ssize_t t = 0; t < n; t++) {
        const int reach = cross_taps < t + 1 ? cross_taps : (int)(t + 1);
        const int64_t pc = cross_predict(cw, cross_clamped, t, reach, cross_shift);
        int64_t p[MAX_CASCADE_STAGES], u[MAX_CASCADE_STAGES + 1];
        for (int k = 0; k < shared; k++) p[k] = stage_predict(&shared_st[k], avx2);
        const int64_t r = buf[t];
        u[0] = r - pc;
        for (int k = 0; k < shared; k++) u[k + 1] = u[k] - p[k];
        for (int v = 0; v < set_count; v++) {
            CascadeSet *set = &sets[v];
            const int all = shared + set->stages;
            int64_t pv[MAX_CASCADE_STAGES], uv[MAX_CASCADE_STAGES + 1];
            for (int k = 0; k < set->stages; k++) pv[k] = stage_predict(&set->st[k], avx2);
            int64_t q[MAX_CASCADE_STAGES + 1], total;
            if (set->mixed) {
                int64_t acc = 0;
                for (int j = 0; j <= all; j++) {
                    q[j] = clamp_to(j == 0 ? pc : j <= shared ? p[j - 1] : pv[j - 1 - shared],
                                    MIX_INPUT_MAX);
                    acc += set->mw[j] * q[j];
                }
                total = (acc + mix_bias_term(set->bias_weight, set->mix[2])) >> set->mix[0];
            } else {
                total = pc;
                for (int k = 0; k < shared; k++) total += p[k];
                for (int k = 0; k < set->stages; k++) total += pv[k];
            }
            const int64_t e = r - total;
            set->out[t] = e;
            if (set->mixed) {
                const int64_t delta = set->mix[1] * sign64(e);
                for (int j = 0; j <= all; j++) set->mw[j] += delta * sign64(q[j]);
                set->bias_weight += delta;
            }
            uv[0] = u[shared];
            for (int k = 0; k < set->stages; k++) uv[k + 1] = uv[k] - pv[k];
            for (int k = 0; k < set->stages; k++) stage_learn(&set->st[k], uv[k], uv[k + 1]);
        }
        const int32_t delta = cross_step * sign64(u[0]);
        for (int j = 0; j < reach; j++) cw[j] += delta * cross_sign[t - j];
        for (int k = 0; k < shared; k++) stage_learn(&shared_st[k], u[k], u[k + 1]);
    }
}

typedef void CascadeRun(int64_t *, const int32_t *, const int32_t *, Py_ssize_t, int, int, int,
                        CascadeStage *, int, int, const int *);

/* flatten: with cascade_many_body as a second caller of the stage sums, GCC stopped inlining
 * them into cascade_body, and decoding CASCADE subframes got 8-12 % slower; flatten inlines
 * them as before. */

FLATTEN
static void cascade_run_portable(int64_t *buf, const int32_t *cross_clamped,
                                 const int32_t *cross_sign, Py_ssize_t n, int cross_taps,
                                 int cross_shift, int cross_step, CascadeStage *st, int stages,
                                 int inverse, const int *mix) {
    cascade_body(buf, cross_clamped, cross_sign, n, cross_taps, cross_shift, cross_step, st,
                 stages, inverse, mix, 0);
}

#if defined(X86_PATHS)
__attribute__((target("avx2"), flatten))
static void cascade_run_avx2(int64_t *buf, const int32_t *cross_clamped,
                             const int32_t *cross_sign, Py_ssize_t n, int cross_taps,
                             int cross_shift, int cross_step, CascadeStage *st, int stages,
                             int inverse, const int *mix) {
    cascade_body(buf, cross_clamped, cross_sign, n, cross_taps, cross_shift, cross_step, st,
                 stages, inverse, mix, 1);
}
#endif

static CascadeRun *cascade_run = cascade_run_portable;  /* set with the model loops */

typedef void CascadeManyRun(const int64_t *, const int32_t *, const int32_t *, Py_ssize_t, int,
                            int, int, CascadeStage *, int, CascadeSet *, int);

static void cascade_many_portable(const int64_t *buf, const int32_t *cross_clamped,
                                  const int32_t *cross_sign, Py_ssize_t n, int cross_taps,
                                  int cross_shift, int cross_step, CascadeStage *shared_st,
                                  int shared, CascadeSet *sets, int set_count) {
    cascade_many_body(buf, cross_clamped, cross_sign, n, cross_taps, cross_shift, cross_step,
                      shared_st, shared, sets, set_count, 0);
}

#if defined(X86_PATHS)
__attribute__((target("avx2")))
static void cascade_many_avx2(const int64_t *buf, const int32_t *cross_clamped,
                              const int32_t *cross_sign, Py_ssize_t n, int cross_taps,
                              int cross_shift, int cross_step, CascadeStage *shared_st,
                              int shared, CascadeSet *sets, int set_count) {
    cascade_many_body(buf, cross_clamped, cross_sign, n, cross_taps, cross_shift, cross_step,
                      shared_st, shared, sets, set_count, 1);
}
#endif

static CascadeManyRun *cascade_many_run = cascade_many_portable;

static void select_cascade(const char *variant) {
#if defined(X86_PATHS)
    if (strcmp(variant, "avx2") == 0) {
        cascade_run = cascade_run_avx2;
        cascade_many_run = cascade_many_avx2;
        return;
    }
#endif
    cascade_run = cascade_run_portable;
    cascade_many_run = cascade_many_portable;
}

/* params as cascade() takes them (cross_taps, cross_shift, cross_step, then taps, shift, step,
 * rule of each stage) within the bounds of §6.4 */
static int cascade_params_ok(const int32_t *q, Py_ssize_t count) {
    const Py_ssize_t stages = (count - 3) / 4;
    int ok = count >= 3 && (count - 3) % 4 == 0 && stages <= MAX_CASCADE_STAGES
             && q[0] >= 0 && q[0] <= MAX_CROSS_TAPS && q[1] >= 0 && q[1] <= MAX_CASCADE_SHIFT
             && q[2] >= 0 && q[2] <= 255;
    for (Py_ssize_t k = 0; ok && k < stages; k++) {
        const int32_t *r = q + 3 + 4 * k;
        ok = r[0] >= 1 && r[0] <= MAX_CASCADE_TAPS && r[1] >= 0 && r[1] <= MAX_CASCADE_SHIFT
             && r[2] >= 0 && r[2] <= 255 && (r[3] == CASCADE_RULE_SIGN || r[3] == CASCADE_RULE_SCALED);
    }
    return ok;
}

/* (mix_shift, mix_step, mix_bias) within the bounds of §6.5 */
static int mix_ok(const int *mix) {
    return mix[0] >= 0 && mix[0] <= MAX_MIX_SHIFT && mix[1] >= 0 && mix[1] <= MAX_MIX_STEP
           && mix[2] >= 0 && mix[2] <= MAX_MIX_BIAS;
}

/* The cross stage's inputs (§6.4), once a subframe: the preceding subframe's residual clamped
 * to the history bound, and its signs. */
static void cross_inputs(const int64_t *cross, Py_ssize_t n, int32_t *clamped, int32_t *sign) {
    for (Py_ssize_t t = 0; t < n; t++) {
        clamped[t] = (int32_t)clamp_history(cross[t]);
        sign[t] = sign64(cross[t]);
    }
}

/* A stage of (taps, shift, step, rule) = r[0..3] at its start (all zero), its arrays taken
 * from ``half`` (zeroed, 6 * taps int16); returns what follows them. */
static int16_t *stage_init(CascadeStage *st, const int32_t *r, int16_t *half) {
    st->taps = r[0]; st->shift = r[1]; st->step = r[2]; st->rule = r[3];
    st->pos = 0; st->avg = 0;
    st->pending_sign = 0; st->pending_x = 0; st->pending_pos = 0;
    st->pending = 0;
    st->hi = half; half += r[0];
    st->lo = half; half += r[0];
    st->h = half; half += 2 * r[0];
    st->d = half; half += 2 * r[0];
    return half;
}

/* cascade(buf, cross, params, inverse, mix=None): params = (cross_taps, cross_shift,
 * cross_step, then taps, shift, step, rule of each stage) as int32; buf int64 in place; cross
 * int64 of the same length or None; mix None (CASCADE) or (mix_shift, mix_step, mix_bias)
 * (§6.5). */
static PyObject *cascade(PyObject *self, PyObject *args) {
    PyObject *b_obj, *c_obj, *p_obj, *m_obj = Py_None;
    int inverse, mix[3] = {0, 0, 0};
    if (!PyArg_ParseTuple(args, "OOOp|O", &b_obj, &c_obj, &p_obj, &inverse, &m_obj)) return NULL;
    const int mixed = m_obj != Py_None;
    if (mixed) {
        if (!PyArg_ParseTuple(m_obj, "iii", &mix[0], &mix[1], &mix[2])) return NULL;
        if (!mix_ok(mix)) {
            PyErr_SetString(PyExc_ValueError, "cascade: mixer out of range (§6.5)");
            return NULL;
        }
    }
    Py_buffer b, c, p;
    if (get_buffer(b_obj, &b, 1, 8, "buf") < 0) return NULL;
    int have_cross = c_obj != Py_None;
    if (have_cross && get_buffer(c_obj, &c, 0, 8, "cross") < 0) {
        PyBuffer_Release(&b); return NULL;
    }
    if (get_buffer(p_obj, &p, 0, 4, "params") < 0) {
        PyBuffer_Release(&b); if (have_cross) PyBuffer_Release(&c); return NULL;
    }
    const int32_t *q = p.buf;
    const Py_ssize_t count = p.len / 4, n = b.len / 8;
    const int stages = (int)((count - 3) / 4);
    /* n <= 65535 (a subframe's most, §5.2) is what bounds |w| below 2**26 (§6.4), which the
     * int16 split of the weights relies on */
    int ok = cascade_params_ok(q, count) && n <= MAX_CASCADE_SAMPLES
             && (!have_cross || c.len == b.len);
    CascadeStage st[MAX_CASCADE_STAGES];
    int32_t *memory = NULL;
    if (ok) {
        const int use_cross = have_cross && q[0] > 0;
        Py_ssize_t words = use_cross ? 2 * n : 0, halves = 0;  /* int32 and int16 words */
        for (int k = 0; k < stages; k++) halves += 6 * (Py_ssize_t)q[3 + 4 * k];
        words += (halves + 1) / 2;
        memory = calloc(words ? words : 1, sizeof(int32_t));
        if (!memory) {
            PyBuffer_Release(&b); PyBuffer_Release(&p); if (have_cross) PyBuffer_Release(&c);
            return PyErr_NoMemory();
        }
        int16_t *half = (int16_t *)(memory + (use_cross ? 2 * n : 0));
        for (int k = 0; k < stages; k++) half = stage_init(&st[k], q + 3 + 4 * k, half);
        int32_t *cross_clamped = use_cross ? memory : NULL;
        int32_t *cross_sign = use_cross ? memory + n : NULL;
        Py_BEGIN_ALLOW_THREADS
        if (use_cross) cross_inputs(c.buf, n, cross_clamped, cross_sign);
        cascade_run(b.buf, cross_clamped, cross_sign, n, q[0], q[1], q[2], st, stages, inverse,
                    mixed ? mix : NULL);
        Py_END_ALLOW_THREADS
        free(memory);
    } else {
        PyErr_SetString(PyExc_ValueError, "cascade: parameters out of range (§6.4)");
    }
    PyBuffer_Release(&b); PyBuffer_Release(&p);
    if (have_cross) PyBuffer_Release(&c);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

#define MAX_CASCADE_SETS 16

/* cascade_many(buf, cross, params_seq, mix_seq, out_seq): the encoder's forward cascade() of
 * each stage set in params_seq (with the mixer of mix_seq's entry: None or (mix_shift,
 * mix_step, mix_bias)) over buf, into out_seq's int64 arrays of buf's length; buf is not
 * changed. The sets MUST share the cross stage; their common first stages run once
 * (cascade_many_body). Each out is what cascade(copy of buf, cross, params, False, mix) makes. */
static PyObject *cascade_many(PyObject *self, PyObject *args) {
    PyObject *b_obj, *c_obj, *ps_obj, *ms_obj, *os_obj;
    if (!PyArg_ParseTuple(args, "OOOOO", &b_obj, &c_obj, &ps_obj, &ms_obj, &os_obj)) return NULL;
    PyObject *ps = PySequence_Fast(ps_obj, "params_seq"), *ms = NULL, *os = NULL;
    if (!ps) return NULL;
    ms = PySequence_Fast(ms_obj, "mix_seq");
    if (ms) os = PySequence_Fast(os_obj, "out_seq");
    Py_buffer b, c, p[MAX_CASCADE_SETS], o[MAX_CASCADE_SETS];
    int have_b = 0, have_c = 0, got_p = 0, got_o = 0, ok = 0;
    CascadeSet *sets = NULL;
    int32_t *memory = NULL;
    const Py_ssize_t count = ps && ms && os ? PySequence_Fast_GET_SIZE(ps) : -1;
    if (count < 0) goto done;
    if (count < 1 || count > MAX_CASCADE_SETS || PySequence_Fast_GET_SIZE(ms) != count
        || PySequence_Fast_GET_SIZE(os) != count) {
        PyErr_SetString(PyExc_ValueError, "cascade_many: 1..16 sets, as many mixes and outs");
        goto done;
    }
    if (get_buffer(b_obj, &b, 0, 8, "buf") < 0) goto done;
    have_b = 1;
    if (c_obj != Py_None) {
        if (get_buffer(c_obj, &c, 0, 8, "cross") < 0) goto done;
        have_c = 1;
    }
    const Py_ssize_t n = b.len / 8;
    sets = calloc((size_t)count, sizeof *sets);
    if (!sets) { PyErr_NoMemory(); goto done; }
    const int32_t *q[MAX_CASCADE_SETS];
    int stages[MAX_CASCADE_SETS];
    for (; got_p < count; got_p++) {
        if (get_buffer(PySequence_Fast_GET_ITEM(ps, got_p), &p[got_p], 0, 4, "params") < 0)
            goto done;
        q[got_p] = p[got_p].buf;
        stages[got_p] = (int)((p[got_p].len / 4 - 3) / 4);
        if (!cascade_params_ok(q[got_p], p[got_p].len / 4)
            || q[got_p][0] != q[0][0] || q[got_p][1] != q[0][1] || q[got_p][2] != q[0][2]) {
            got_p++;
            PyErr_SetString(PyExc_ValueError, "cascade_many: parameters out of range (§6.4) "
                            "or cross stages differ");
            goto done;
        }
        PyObject *m = PySequence_Fast_GET_ITEM(ms, got_p);
        CascadeSet *set = &sets[got_p];
        set->mixed = m != Py_None;
        if (set->mixed) {
            if (!PyArg_ParseTuple(m, "iii", &set->mix[0], &set->mix[1], &set->mix[2])) {
                got_p++; goto done;
            }
            if (!mix_ok(set->mix)) {
                got_p++;
                PyErr_SetString(PyExc_ValueError, "cascade_many: mixer out of range (§6.5)");
                goto done;
            }
        }
    }
    for (; got_o < count; got_o++) {
        if (get_buffer(PySequence_Fast_GET_ITEM(os, got_o), &o[got_o], 1, 8, "out") < 0) goto done;
        sets[got_o].out = o[got_o].buf;
        if (o[got_o].len != b.len) {
            got_o++;
            PyErr_SetString(PyExc_ValueError, "cascade_many: an out is not buf's length");
            goto done;
        }
    }
    if (n > MAX_CASCADE_SAMPLES || (have_c && c.len != b.len)) {
        PyErr_SetString(PyExc_ValueError, "cascade_many: buf or cross out of range");
        goto done;
    }
    /* the common first stages: equal (taps, shift, step, rule) in every set */
    int shared = stages[0];
    for (Py_ssize_t v = 1; v < count; v++) {
        int k = 0;
        while (k < shared && k < stages[v]
               && memcmp(q[v] + 3 + 4 * k, q[0] + 3 + 4 * k, 4 * sizeof(int32_t)) == 0) k++;
        shared = k;
    }
    const int use_cross = have_c && q[0][0] > 0;
    Py_ssize_t halves = 0;
    for (int k = 0; k < shared; k++) halves += 6 * (Py_ssize_t)q[0][3 + 4 * k];
    for (Py_ssize_t v = 0; v < count; v++)
        for (int k = shared; k < stages[v]; k++) halves += 6 * (Py_ssize_t)q[v][3 + 4 * k];
    const Py_ssize_t words = (use_cross ? 2 * n : 0) + (halves + 1) / 2;
    memory = calloc(words ? (size_t)words : 1, sizeof(int32_t));
    if (!memory) { PyErr_NoMemory(); goto done; }
    int16_t *half = (int16_t *)(memory + (use_cross ? 2 * n : 0));
    CascadeStage shared_st[MAX_CASCADE_STAGES];
    for (int k = 0; k < shared; k++) half = stage_init(&shared_st[k], q[0] + 3 + 4 * k, half);
    for (Py_ssize_t v = 0; v < count; v++) {
        CascadeSet *set = &sets[v];
        set->stages = stages[v] - shared;
        for (int k = 0; k < set->stages; k++)
            half = stage_init(&set->st[k], q[v] + 3 + 4 * (shared + k), half);
        for (int j = 0; j <= stages[v]; j++) set->mw[j] = set->mixed ? (int64_t)1 << set->mix[0] : 0;
        set->bias_weight = 0;
    }
    int32_t *cross_clamped = use_cross ? memory : NULL;
    int32_t *cross_sign = use_cross ? memory + n : NULL;
    Py_BEGIN_ALLOW_THREADS
    if (use_cross) cross_inputs(c.buf, n, cross_clamped, cross_sign);
    cascade_many_run(b.buf, cross_clamped, cross_sign, n, q[0][0], q[0][1], q[0][2], shared_st,
                     shared, sets, (int)count);
    Py_END_ALLOW_THREADS
    ok = 1;
done:
    free(memory);
    free(sets);
    for (int i = 0; i < got_p; i++) PyBuffer_Release(&p[i]);
    for (int i = 0; i < got_o; i++) PyBuffer_Release(&o[i]);
    if (have_c) PyBuffer_Release(&c);
    if (have_b) PyBuffer_Release(&b);
    Py_XDECREF(ps); Py_XDECREF(ms); Py_XDECREF(os);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* --------------------------------------- OLS_CASCADE's predictor (§6.6) -- */

#define MAX_OLS_TAPS 32
#define MAX_OLS_SCALE 24
#define OLS_INPUT_MAX ((int64_t)1 << 24)
#define MAX_OLS_FORGET 13
#define MAX_OLS_RIDGE 62
#define MIN_OLS_INTERVAL_LOG2 3
#define MAX_OLS_INTERVAL_LOG2 10
#define OLS_MANTISSA_BITS 31
#define OLS_WEIGHT_FRACTION 24
#define OLS_WEIGHT_MAX ((int64_t)1 << 30)
#define OLS_L_MAX_LOG2 32
#define SF_M OLS_MANTISSA_BITS

/* §6.6's soft float: m * 2**e, m = 0 or 2**30 <= |m| < 2**31. Every product of two mantissas
 * fits in 63 bits; exponents stay far inside int64 (§6.6's bounds). */
typedef struct { int64_t m, e; } SoftFloat;

static inline uint64_t magnitude64(int64_t v) { return v < 0 ? -(uint64_t)v : (uint64_t)v; }

static inline int64_t with_sign(uint64_t a, int64_t like) {
    return like < 0 ? -(int64_t)a : (int64_t)a;
}

/* F(m, e): the magnitude of m truncated (or shifted up) to SF_M bits */
static inline SoftFloat sf_norm(int64_t m, int64_t e) {
    if (m == 0) return (SoftFloat){0, 0};
    uint64_t a = magnitude64(m);
    const int s = bitlen64(a) - SF_M;
    a = s > 0 ? a >> s : a << -s;
    return (SoftFloat){with_sign(a, m), e + s};
}

/* A × B: the product of two normalised mantissas has 61 or 62 bits, so F's shift is 30 or 31 */
static inline SoftFloat sf_mul(SoftFloat a, SoftFloat b) {
    const int64_t p = a.m * b.m;
    const uint64_t mag = magnitude64(p);
    const int s = 30 + (int)(mag >> 61);
    return p ? (SoftFloat){with_sign(mag >> s, p), a.e + b.e + s} : (SoftFloat){0, 0};
}

/* m * 2**(SF_M - d), the magnitude truncated: an operand d binary places below the other */
static inline int64_t sf_aligned(int64_t m, int64_t d) {
    if (d <= SF_M) return m * ((int64_t)1 << (SF_M - d));
    if (d > 2 * SF_M) return 0;
    return with_sign(magnitude64(m) >> (d - SF_M), m);
}

/* A − B as A + (−B), the operand of the larger exponent first: the same sum as §6.6's two
 * cases (T truncates magnitudes, so T(−m, d) = −T(m, d)), with selects instead of branches */
static inline SoftFloat sf_sub(SoftFloat a, SoftFloat b) {
    if (b.m == 0) return a;
    if (a.m == 0) return (SoftFloat){-b.m, b.e};
    const int swap = a.e < b.e;
    const int64_t high = swap ? -b.m : a.m, low = swap ? a.m : -b.m;
    const int64_t e = swap ? b.e : a.e, d = swap ? b.e - a.e : a.e - b.e;
    return sf_norm(high * ((int64_t)1 << SF_M) + sf_aligned(low, d), e - SF_M);
}

static inline SoftFloat sf_div(SoftFloat a, SoftFloat b) {  /* b > 0 */
    SoftFloat q = sf_norm((int64_t)((magnitude64(a.m) << SF_M) / (uint64_t)b.m), a.e - b.e - SF_M);
    q.m = with_sign((uint64_t)q.m, a.m);
    return q;
}

/* a * 2**24 truncated, clamped to +-2**30: a weight */
static inline int64_t sf_weight(SoftFloat a) {
    if (a.m == 0) return 0;
    const int64_t s = a.e + OLS_WEIGHT_FRACTION;
    const uint64_t mag = magnitude64(a.m);
    uint64_t v = s > 62 - SF_M ? (uint64_t)OLS_WEIGHT_MAX : s >= 0 ? mag << s : s > -63 ? mag >> -s : 0;
    if (v > (uint64_t)OLS_WEIGHT_MAX) v = OLS_WEIGHT_MAX;
    return with_sign(v, a.m);
}

static inline int sf_at_least(SoftFloat a, int log2) {  /* |a| >= 2**log2 */
    return a.m != 0 && bitlen64(magnitude64(a.m)) + a.e > log2;
}

/* §6.6's solve of (R + ridge) x = b, R upper-triangular in rows of n; the weights into w, or 0
 * (w untouched) when the solve is abandoned. */
static int ols_solve(const int64_t *R, const int64_t *b, int n, int ridge, int64_t *w) {
    SoftFloat L[MAX_OLS_TAPS][MAX_OLS_TAPS], d[MAX_OLS_TAPS], ld[MAX_OLS_TAPS], z[MAX_OLS_TAPS];
    for (int j = 0; j < n; j++) {
        const int64_t rjj = R[j * n + j];
        SoftFloat dj = sf_norm(rjj + (rjj >> ridge) + 1, 0);
        for (int m = 0; m < j; m++) {
            ld[m] = sf_mul(L[j][m], d[m]);
            dj = sf_sub(dj, sf_mul(L[j][m], ld[m]));
        }
        if (dj.m <= 0 || !sf_at_least(dj, 0)) return 0;
        d[j] = dj;
        for (int i = j + 1; i < n; i++) {
            SoftFloat acc = sf_norm(R[j * n + i], 0);
            for (int m = 0; m < j; m++) acc = sf_sub(acc, sf_mul(L[i][m], ld[m]));
            L[i][j] = sf_div(acc, dj);
            if (sf_at_least(L[i][j], OLS_L_MAX_LOG2)) return 0;
        }
    }
    for (int i = 0; i < n; i++) {
        SoftFloat acc = sf_norm(b[i], 0);
        for (int m = 0; m < i; m++) acc = sf_sub(acc, sf_mul(L[i][m], z[m]));
        z[i] = acc;
    }
    SoftFloat x[MAX_OLS_TAPS];
    for (int i = n - 1; i >= 0; i--) {
        SoftFloat acc = sf_div(z[i], d[i]);
        for (int m = i + 1; m < n; m++) acc = sf_sub(acc, sf_mul(L[m][i], x[m]));
        x[i] = acc;
    }
    for (int i = 0; i < n; i++) w[i] = sf_weight(x[i]);
    return 1;
}

/* in(x) of §6.6. A decoded value has at most 33 bits, so x << scale fits; beyond ±2^24 the
 * clamp decides before the shift, so that any int64 is safe here as well. */
static inline int64_t ols_input(int64_t x, int scale) {
    if (x > OLS_INPUT_MAX || x < -OLS_INPUT_MAX) return x > 0 ? OLS_INPUT_MAX : -OLS_INPUT_MAX;
    return clamp_to(x * ((int64_t)1 << scale), OLS_INPUT_MAX);
}

/* One subframe through §6.6, in place (forward: values to residuals; inverse: back, checked
 * against [lo, hi]). own, cross: the clamped inputs, each with MAX_OLS_TAPS zeros before
 * index 0; cross is all zero without a previous subframe. Returns the first bad index or -1. */
static Py_ssize_t ols_run(int64_t *buf, int64_t *own, const int64_t *cross, Py_ssize_t count,
                          const int32_t *q, int inverse, int64_t lo, int64_t hi, int64_t *R) {
    const int taps = q[0], cross_taps = q[1], scale = q[2], forget = q[3], ridge = q[4];
    const int n = taps + cross_taps;
    const Py_ssize_t interval_mask = ((Py_ssize_t)1 << q[5]) - 1;
    const int out_shift = OLS_WEIGHT_FRACTION + scale;
    const int64_t half = (int64_t)1 << (out_shift - 1);
    int64_t w[MAX_OLS_TAPS] = {0}, b[MAX_OLS_TAPS] = {0}, v[MAX_OLS_TAPS];
    for (Py_ssize_t t = 0; t < count; t++) {
        for (int j = 0; j < taps; j++) v[j] = own[t - 1 - j];
        for (int j = 0; j < cross_taps; j++) v[taps + j] = cross[t - j];
        int64_t acc = 0;
        for (int j = 0; j < n; j++) acc += w[j] * v[j];
        const int64_t pred = (acc + half) >> out_shift;
        int64_t value;
        if (inverse) {
            value = buf[t] + pred;
            if (value < lo || value > hi) return t;
            buf[t] = value;
        } else {
            value = buf[t];
            buf[t] = value - pred;
        }
        const int64_t y = own[t] = ols_input(value, scale);
        for (int i = 0; i < n; i++) {
            const int64_t vi = v[i];
            int64_t *row = R + (Py_ssize_t)i * n;
            b[i] += vi * y - (b[i] >> forget);
            for (int j = i; j < n; j++) row[j] += vi * v[j] - (row[j] >> forget);
        }
        if ((t & interval_mask) == interval_mask) ols_solve(R, b, n, ridge, w);
    }
    return -1;
}

/* ols(buf, cross, params, inverse, lo, hi) -> first bad index or -1: params = (ols_taps,
 * ols_cross_taps, ols_scale, ols_forget, ols_ridge, ols_interval_log2) as int32; buf int64 in
 * place; cross the previous subframe's int64 values (same length) or None. */
static PyObject *ols(PyObject *self, PyObject *args) {
    PyObject *b_obj, *c_obj, *p_obj;
    int inverse;
    long long lo = 0, hi = 0;
    if (!PyArg_ParseTuple(args, "OOOp|LL", &b_obj, &c_obj, &p_obj, &inverse, &lo, &hi))
        return NULL;
    Py_buffer b, c, p;
    if (get_buffer(b_obj, &b, 1, 8, "buf") < 0) return NULL;
    const int have_cross = c_obj != Py_None;
    if (have_cross && get_buffer(c_obj, &c, 0, 8, "cross") < 0) {
        PyBuffer_Release(&b); return NULL;
    }
    if (get_buffer(p_obj, &p, 0, 4, "params") < 0) {
        PyBuffer_Release(&b); if (have_cross) PyBuffer_Release(&c); return NULL;
    }
    const int32_t *q = p.buf;
    const Py_ssize_t n = b.len / 8;
    const int ok = p.len == 6 * 4 && n <= MAX_CASCADE_SAMPLES && (!have_cross || c.len == b.len)
                   && q[0] >= 1 && q[1] >= 0 && q[0] + q[1] <= MAX_OLS_TAPS
                   && q[2] >= 0 && q[2] <= MAX_OLS_SCALE && q[3] >= 1 && q[3] <= MAX_OLS_FORGET
                   && q[4] >= 1 && q[4] <= MAX_OLS_RIDGE && q[5] >= MIN_OLS_INTERVAL_LOG2
                   && q[5] <= MAX_OLS_INTERVAL_LOG2;
    Py_ssize_t bad = -1;
    int no_memory = 0;
    if (ok) {
        const int taps = q[0] + q[1];
        int64_t *memory = calloc(2 * (n + MAX_OLS_TAPS) + (Py_ssize_t)taps * taps, sizeof(int64_t));
        no_memory = memory == NULL;
        if (memory) {
            int64_t *own = memory + MAX_OLS_TAPS, *cross = own + n + MAX_OLS_TAPS;
            int64_t *R = cross + n;
            Py_BEGIN_ALLOW_THREADS
            if (have_cross) {
                const int64_t *values = c.buf;
                for (Py_ssize_t t = 0; t < n; t++) cross[t] = ols_input(values[t], q[2]);
            }
            bad = ols_run(b.buf, own, cross, n, q, inverse, lo, hi, R);
            Py_END_ALLOW_THREADS
            free(memory);
        }
    }
    PyBuffer_Release(&b); PyBuffer_Release(&p);
    if (have_cross) PyBuffer_Release(&c);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "ols: parameters out of range (§6.6)");
        return NULL;
    }
    if (no_memory) return PyErr_NoMemory();
    return PyLong_FromSsize_t(bad);
}

/* ---------------------------------------------------- frame assembly -- */

/* Left and right from the two coded channels (§6.1); the spec's channel_mode values. */
static inline void restore_pair(int mode, int64_t a, int64_t b, int64_t *left, int64_t *right) {
    switch (mode) {
    case 1: *left = a; *right = a - b; break;                      /* LEFT_SIDE */
    case 2: *left = a + b; *right = b; break;                      /* SIDE_RIGHT */
    case 3: {                                                      /* MID_SIDE */
        const int64_t mid = (int64_t)((uint64_t)a << 1) | (b & 1);
        *left = (mid + b) >> 1; *right = (mid - b) >> 1;
        break;
    }
    default: *left = a; *right = b;                                /* INDEPENDENT */
    }
}

/* frame_pcm(coded, shifts, mode, bits, pcm, image) -> -1, or the first sample (frame-relative)
 * whose restored value leaves the bits-bit range. coded: one int64 buffer per channel, count
 * values each, to be shifted left by the channel's wasted bits (shifts: one byte a channel,
 * §5.3), channels 0 and 1 decorrelated by ``mode`` (§6.1); pcm: int32, count x channels,
 * interleaved; image: count x channels x ceil(bits/8) bytes, the little-endian image the PCM
 * MD5 covers (§4.2). One pass instead of numpy's restore, stack, min, max, cast and pack. */
#define FRAME_PCM_MAX_CHANNELS 255

/* The loop of frame_pcm for one image width (a constant where it is inlined). */
static ALWAYS_INLINE Py_ssize_t frame_pcm_rows(const int64_t *const *in, const char *shifts,
                                               Py_ssize_t channels, Py_ssize_t count,
                                               int mode, int bits, int32_t *out, uint8_t *img,
                                               const int width) {
    const int64_t lo = -((int64_t)1 << (bits - 1)), hi = ((int64_t)1 << (bits - 1)) - 1;
    const Py_ssize_t first_plain = channels >= 2 ? 2 : 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t v[FRAME_PCM_MAX_CHANNELS];
        for (Py_ssize_t c = 0; c < channels; c++)
            v[c] = (int64_t)((uint64_t)in[c][i] << (uint8_t)shifts[c]);
        if (first_plain) restore_pair(mode, v[0], v[1], &v[0], &v[1]);
        for (Py_ssize_t c = 0; c < channels; c++) {
            if (v[c] < lo || v[c] > hi) return i;
            *out++ = (int32_t)v[c];
            const uint64_t u = (uint64_t)v[c];
            for (int k = 0; k < width; k++) img[k] = (uint8_t)(u >> (8 * k));
            img += width;
        }
    }
    return -1;
}

/* frame_pcm_rows for each width, ``channels`` a constant (1, 2) where it is inlined. */
static ALWAYS_INLINE Py_ssize_t frame_pcm_width(const int64_t *const *in, const char *shifts,
                                                Py_ssize_t channels, Py_ssize_t count,
                                                int mode, int bits, int32_t *out, uint8_t *img,
                                                int width) {
    switch (width) {
    case 1: return frame_pcm_rows(in, shifts, channels, count, mode, bits, out, img, 1);
    case 2: return frame_pcm_rows(in, shifts, channels, count, mode, bits, out, img, 2);
    case 3: return frame_pcm_rows(in, shifts, channels, count, mode, bits, out, img, 3);
    default: return frame_pcm_rows(in, shifts, channels, count, mode, bits, out, img, 4);
    }
}
static PyObject *frame_pcm(PyObject *self, PyObject *args) {
    PyObject *seq_obj, *p_obj, *i_obj;
    const char *shifts;
    Py_ssize_t shift_count;
    int mode, bits;
    if (!PyArg_ParseTuple(args, "Oy#iiOO", &seq_obj, &shifts, &shift_count, &mode, &bits, &p_obj,
                          &i_obj)) return NULL;
    if (bits < 1 || bits > 32 || mode < 0 || mode > 3) {
        PyErr_SetString(PyExc_ValueError, "frame_pcm: bits 1..32, mode 0..3");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(seq_obj, "frame_pcm: coded must be a sequence");
    if (!seq) return NULL;
    const Py_ssize_t channels = PySequence_Fast_GET_SIZE(seq);
    int shifts_ok = shift_count == channels;
    for (Py_ssize_t c = 0; shifts_ok && c < channels; c++) shifts_ok = (uint8_t)shifts[c] < 32;
    if (channels < 1 || channels > FRAME_PCM_MAX_CHANNELS || (mode && channels < 2)
            || !shifts_ok) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError,
                        "frame_pcm: 1..255 channels (two for a mode), a shift 0..31 for each");
        return NULL;
    }
    Py_buffer views[FRAME_PCM_MAX_CHANNELS], pcm, image;
    const int64_t *in[FRAME_PCM_MAX_CHANNELS];
    Py_ssize_t got = 0, count = -1;
    int ok = 1;
    for (; got < channels; got++) {
        if (get_buffer(PySequence_Fast_GET_ITEM(seq, got), &views[got], 0, 8, "coded") < 0) {
            ok = 0;
            break;
        }
        in[got] = views[got].buf;
        if (count < 0) count = views[got].len / 8;
        if (views[got].len / 8 != count) {
            PyErr_SetString(PyExc_ValueError, "frame_pcm: channels of different lengths");
            got++; ok = 0;
            break;
        }
    }
    const int width = (bits + 7) / 8;
    int have_pcm = 0, have_image = 0;
    if (ok) ok = have_pcm = get_buffer(p_obj, &pcm, 1, 4, "pcm") == 0;
    if (ok) ok = have_image = get_buffer(i_obj, &image, 1, 1, "image") == 0;
    if (ok && (pcm.len / 4 != count * channels || image.len != count * channels * width)) {
        PyErr_SetString(PyExc_ValueError, "frame_pcm: pcm or image of the wrong size");
        ok = 0;
    }
    Py_ssize_t bad = -1;
    if (ok) {
        /* one copy of the loop per image width, so that the compiler writes each sample's
         * bytes with fixed stores: 3-4 times faster than a loop over the width */
        bad = channels == 1 ? frame_pcm_width(in, shifts, 1, count, mode, bits, pcm.buf,
                                              image.buf, width)
            : channels == 2 ? frame_pcm_width(in, shifts, 2, count, mode, bits, pcm.buf,
                                              image.buf, width)
            : frame_pcm_width(in, shifts, channels, count, mode, bits, pcm.buf, image.buf,
                              width);
    }
    for (Py_ssize_t c = 0; c < got; c++) PyBuffer_Release(&views[c]);
    if (have_pcm) PyBuffer_Release(&pcm);
    if (have_image) PyBuffer_Release(&image);
    Py_DECREF(seq);
    if (!ok) return NULL;
    return PyLong_FromSsize_t(bad);
}

static PyMethodDef methods[] = {
    {"autocorrelation", autocorrelation, METH_VARARGS,
     "autocorrelation(x, max_lag, r): r[k] = sum of x[i]*x[i+k], in order (encoder only)."},
    {"quantize", quantize, METH_VARARGS,
     "quantize(lpc, precision, out) -> (shift, coef_bits): coefficients to integers (encoder)."},
    {"levinson", levinson, METH_VARARGS,
     "levinson(r, max_order, coefs, errors): LPC of every order 1..max_order (encoder only)."},
    {"lpc_residual", lpc_residual, METH_VARARGS,
     "lpc_residual(samples, coefs, order, shift, out): residual of int64 samples (spec 6.3)."},
    {"unpack_signed", unpack_signed, METH_VARARGS,
     "unpack_signed(data, count, width, out): signed MSB-first values to int32/int64 (5.4)."},
    {"lpc_restore", lpc_restore, METH_VARARGS,
     "lpc_restore(buf, coefs, order, shift, lo, hi) -> first bad index or -1 (spec 6.3)."},
    {"rc_encode", rc_encode, METH_VARARGS,
     "rc_encode(residual, initial_mean_log2[, latents, prior, levels_log2]) -> bytes (spec 7, 8.2)."},
    {"rc_cost", rc_cost, METH_VARARGS,
     "rc_cost(residual, initial_mean_log2[, latents, prior, levels_log2]) -> 2**-16 bits."},
    {"rc_decode", rc_decode, METH_VARARGS,
     "rc_decode(data, initial_mean_log2, out[, latents, prior, levels_log2]) -> status (7, 8.2)."},
    {"model_features", model_features, METH_VARARGS,
     "model_features(e, s, cross, width, mean_log2, history, out): network inputs (8.3)."},
    {"model_residual", model_residual, METH_VARARGS,
     "model_residual(e, s, cross, width, mean_log2, net, out): e minus the correction (8.4)."},
    {"model_restore", model_restore, METH_VARARGS,
     "model_restore(buf, coefs, order, shift, lo, hi, width, mean_log2, net, cross, e_out)."},
    {"cascade", cascade, METH_VARARGS,
     "cascade(buf, cross, params, inverse, mix=None): the adaptive stages of 6.4 (and the mixer of 6.5), in place."},
    {"cascade_many", cascade_many, METH_VARARGS,
     "cascade_many(buf, cross, params_seq, mix_seq, out_seq): forward cascade() of several stage sets sharing their first stages (encoder)."},
    {"ols", ols, METH_VARARGS,
     "ols(buf, cross, params, inverse, lo=0, hi=0) -> first bad index or -1: the least-squares predictor of 6.6."},
    {"affine", affine, METH_VARARGS,
     "affine(weights, x, biases, out): out = biases + weights @ x, int16/int64/int32 (8.3)."},
    {"frame_pcm", frame_pcm, METH_VARARGS,
     "frame_pcm(coded, shifts, mode, bits, pcm, image) -> first bad index or -1 (5.3, 6.1, 4.2)."},
    {"model_loops", model_loops, METH_VARARGS,
     "model_loops([name]) -> (name in use, names available): the build of the model loops."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    choose_loops();
    model_prior(&INITIAL_MODEL);
    cost_init();
    return PyModule_Create(&module);
}
