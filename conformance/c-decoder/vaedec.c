/* vaedec: an independent decoder of the .vae lossless audio format 1.5, written from
 * spec/vae-format.md alone.  Usage: vaedec IN.vae OUT.wav */
#define _POSIX_C_SOURCE 200809L
#include "vaedec.h"
#include "predict.h"
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Folders searched for installed models (§8.1): every -m DIR, then VAELAC_MODEL_PATH's
 * colon-separated entries. */
#define MAX_MODEL_DIRS 64
static const char *model_dirs[MAX_MODEL_DIRS];
static int n_model_dirs;

static char tmp_path[4200];
static FILE *tmp_fp;

void fail(int cls, const char *fmt, ...)
{
    static const char *names[] = {"", "FormatError", "NotVaeError", "UnsupportedError", "TruncatedError",
                                  "IntegrityError", "LimitError", "ModelError"};
    va_list ap;
    fprintf(stderr, "vaedec: %s: ", names[cls]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (tmp_fp) fclose(tmp_fp);
    if (tmp_path[0]) unlink(tmp_path);
    exit(cls + 1);
}

int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        int k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; }
        else return 0;
        for (int j = 1; j <= k; j++) {
            if (i + (size_t)j >= n || (s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000)) return 0;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static int bitlen64(uint64_t v)
{
    int n = 0;
    while (v) { n++; v >>= 1; }
    return n;
}

/* MSB-first bit field, signed, width nb <= 64 */
static int64_t getbits_s(const uint8_t *p, uint64_t bitpos, int nb)
{
    uint64_t v = 0;
    for (int i = 0; i < nb; i++) {
        uint64_t b = bitpos + (uint64_t)i;
        v = (v << 1) | ((p[b >> 3] >> (7 - (b & 7))) & 1);
    }
    if (nb < 64 && (v >> (nb - 1)) & 1) v |= ~(uint64_t)0 << nb;
    return (int64_t)v;
}

/* ---------------- stream state ---------------- */
static const uint8_t *buf;
static size_t fsize;
static uint32_t sample_rate, frame_length, channel_mask;
static int channels, bps, lossy;
static uint64_t total_samples;
static uint8_t pcm_md5[16];
static int have_ref, have_data;
static uint8_t ref_sha[32];
static char ref_name[256];
static const uint8_t *mdata;
static size_t mdata_len;
static model_t *model;          /* resolved model */
static int model_resolved;

/* payload reader */
typedef struct { const uint8_t *p; size_t n, pos; } prd;
static const uint8_t *need(prd *r, size_t k)
{
    if (k > r->n - r->pos) fail(E_TRUNCATED, "subframe runs past the end of the payload (§5.3)");
    const uint8_t *q = r->p + r->pos;
    r->pos += k;
    return q;
}
static uint64_t rdu(prd *r, int k) { return be(need(r, (size_t)k), k); }

/* §5.3: a subframe is read whole by §5.4's grammar first (each field's size follows from the
 * fields before it as stored, in range or not; a payload that ends first is a TruncatedError),
 * and only then are its values checked. The first value out of range is kept here until the
 * subframe has been read. */
static char out_of_range[512];

static void defer(const char *fmt, ...)
{
    if (out_of_range[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out_of_range, sizeof out_of_range, fmt, ap);
    va_end(ap);
}

static void check_ranges(void)
{
    if (out_of_range[0]) fail(E_FORMAT, "%s", out_of_range);
}

static void model_hex(const uint8_t *h, char *out)
{
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", h[i]);
}

static void resolve_model(void)
{
    char hex[65];
    model_hex(ref_sha, hex);
    if (model_resolved) return;
    model_resolved = 1;
    uint8_t h[32];
    if (have_data) {
        sha256(mdata, mdata_len, h);
        if (!memcmp(h, ref_sha, 32)) {
            model = calloc(1, sizeof *model);
            const char *err = model_parse(mdata, mdata_len, model);
            if (err) fail(E_MODEL, "model %s (%s) is invalid: %s (§8.1)", ref_name, hex, err);
            return;
        }
    }
    for (int di = 0; di < n_model_dirs; di++) {
        DIR *d = opendir(model_dirs[di]);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (l < 5 || strcmp(de->d_name + l - 5, ".vaem")) continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", model_dirs[di], de->d_name);
                FILE *f = fopen(path, "rb");
                if (!f) continue;
                fseek(f, 0, SEEK_END);
                long sz = ftell(f);
                fseek(f, 0, SEEK_SET);
                uint8_t *mb = malloc((size_t)sz + 1);
                size_t got = fread(mb, 1, (size_t)sz, f);
                fclose(f);
                sha256(mb, got, h);
                if (!memcmp(h, ref_sha, 32)) {
                    model = calloc(1, sizeof *model);
                    const char *err = model_parse(mb, got, model);
                    if (err) fail(E_MODEL, "model %s (%s) is invalid: %s (§8.1)", ref_name, hex, err);
                    closedir(d);
                    return;
                }
                free(mb);
            }
            closedir(d);
        }
    }
    fail(E_MODEL, "model %s (SHA-256 %s) not found (§8.1)", ref_name, hex);
}

static void model_checks(int type)
{
    if (type == 64 && lossy) fail(E_FORMAT, "MODEL_PREDICTED in a LOSSY stream (§8.4)");
    if (type == 65 && !lossy) fail(E_FORMAT, "MODEL_LOSSY without the LOSSY flag (§8.6)");
    if (!have_ref) fail(E_FORMAT, "model-conditioned subframe without MODEL_REF (§8.1)");
    resolve_model();
    if ((type == 64 && model->kind != 1) || (type == 65 && model->kind != 2)) {
        char hex[65];
        model_hex(ref_sha, hex);
        fail(E_MODEL, "model %s (%s) is of the wrong kind for subframe type %d (§8.1)", ref_name, hex, type);
    }
}

/* ---------------- subframes ---------------- */
typedef struct {
    int type, wasted;
    int64_t *vals;   /* stored values (before the wasted-bits shift) */
    int64_t *cross;  /* LPC / least-squares residual, valid if has_cross */
    int has_cross;
} sub_t;

static void range_check(int64_t s, int v, int t)
{
    int64_t lo = -((int64_t)1 << (v - 1)), hi = ((int64_t)1 << (v - 1)) - 1;
    if (s < lo || s > hi) fail(E_INTEGRITY, "decoded value %lld out of range for %d bits (sample %d, §6.3)",
                               (long long)s, v, t);
}

static int64_t lpc_pred(const int64_t *s, int i, int order, const int64_t *c, int shift)
{
    if (i < order) {
        if (i == 0) return 0;
        if (i == 1) return s[0];
        return 2 * s[i - 1] - s[i - 2];
    }
    int64_t acc = 0;
    for (int j = 0; j < order; j++) acc += c[j] * s[i - 1 - j];
    return acc >> shift;
}

typedef struct { int order, coef_bits, shift, iml; int64_t c[32]; } lpc_t;

static void read_lpc(prd *r, lpc_t *l)
{
    l->order = (int)rdu(r, 1);
    l->coef_bits = (int)rdu(r, 1);
    l->shift = (int)rdu(r, 1);
    l->iml = (int)rdu(r, 1);
    if (l->order < 1 || l->order > 32) defer("LPC order %d out of 1..32 (§5.4)", l->order);
    if (l->coef_bits < 1 || l->coef_bits > 16) defer("coef_bits %d out of 1..16 (§5.4)", l->coef_bits);
    if (l->shift > 31) defer("LPC shift %d > 31 (§5.4)", l->shift);
    if (l->iml > 55) defer("initial_mean_log2 %d > 55 (§5.4)", l->iml);
    const uint8_t *cp = need(r, (size_t)(l->order * l->coef_bits + 7) / 8);
    if (out_of_range[0]) return; /* the coefficients are only unpacked when order and width are valid */
    for (int j = 0; j < l->order; j++) l->c[j] = getbits_s(cp, (uint64_t)j * l->coef_bits, l->coef_bits);
}

static void read_stages(prd *r, casc_t *c)
{
    c->K = (int)rdu(r, 1);
    c->cross_shift = (int)rdu(r, 1);
    c->cross_step = (int)rdu(r, 1);
    c->S = (int)rdu(r, 1);
    if (c->K > 32) defer("cross_taps %d > 32 (§5.4)", c->K);
    if (c->cross_shift > 47) defer("cross_shift %d > 47 (§5.4)", c->cross_shift);
    if (c->S > 4) defer("stage_count %d > 4 (§5.4)", c->S);
    for (int k = 0; k < c->S; k++) {
        stage_t spare, *s = k < 4 ? &c->st[k] : &spare; /* stages past the 4th are read, not kept */
        s->N = (int)rdu(r, 2);
        s->shift = (int)rdu(r, 1);
        s->step = (int)rdu(r, 1);
        s->rule = (int)rdu(r, 1);
        if (s->N < 1 || s->N > 1024) defer("stage taps %d out of 1..1024 (§5.4)", s->N);
        if (s->shift > 47) defer("stage shift %d > 47 (§5.4)", s->shift);
        if (s->rule > 1) defer("stage rule %d is not 0 or 1 (§5.4)", s->rule);
    }
    c->mixed = 0;
    c->mix_shift = 0;
}

static void read_mixer(prd *r, casc_t *c)
{
    c->mixed = 1;
    c->mix_shift = (int)rdu(r, 1);
    c->mix_step = (int)rdu(r, 1);
    c->mix_bias = (int)rdu(r, 1);
    if (c->mix_shift > 14) defer("mix_shift %d > 14 (§5.4)", c->mix_shift);
    if (c->mix_step > 63) defer("mix_step %d > 63 (§5.4)", c->mix_step);
    if (c->mix_bias > 16) defer("mix_bias %d > 16 (§5.4)", c->mix_bias);
}

static void decode_subframe(prd *r, int w, int n, sub_t *o, const sub_t *prev)
{
    int type = (int)rdu(r, 1);
    if (type > 5 && type != 64 && type != 65) fail(E_UNSUPPORTED, "reserved subframe type %d (§5.3)", type);
    if (type >= 64) model_checks(type); /* before wasted_bits and the body (§8.1) */
    int wasted = (int)rdu(r, 1);
    out_of_range[0] = 0;
    if (wasted >= w || wasted > 31) defer("wasted_bits %d not below width %d (§5.3)", wasted, w);
    o->type = type;
    o->wasted = wasted;
    o->has_cross = 0;
    int v = w - wasted;
    int64_t *s = o->vals;
    const int64_t *cross = (prev && prev->has_cross) ? prev->cross : NULL;
    const int64_t *yprev = prev ? prev->vals : NULL;

    if (type == 0) {
        int64_t val = (int64_t)rdu(r, 8);
        if (wasted) defer("CONSTANT with wasted_bits %d (§5.4)", wasted);
        check_ranges();
        range_check(val, w, 0);
        for (int i = 0; i < n; i++) s[i] = val;
        return;
    }
    if (type == 1) {
        uint64_t dl = rdu(r, 4);
        uint64_t want = ((uint64_t)n * (uint64_t)v + 7) / 8;
        if (dl != want) defer("VERBATIM data_length %llu, expected %llu (§5.4)",
                              (unsigned long long)dl, (unsigned long long)want);
        const uint8_t *d = need(r, (size_t)dl);
        check_ranges();
        for (int i = 0; i < n; i++) s[i] = getbits_s(d, (uint64_t)i * v, v);
        return;
    }
    if (type == 65) {
        if (wasted) defer("MODEL_LOSSY with wasted_bits %d (§8.6)", wasted);
        uint64_t dl = rdu(r, 4);
        const uint8_t *d = need(r, (size_t)dl);
        check_ranges();
        rdec rd;
        rd_init(&rd, d, (size_t)dl);
        model_t *m = model;
        int B = m->B, D = m->D, L = m->L;
        size_t tsz = ((size_t)1 << L) - 1;
        int64_t x[1024], y[1024], y2[1024];
        for (int t0 = 0; t0 < n; t0 += B) {
            int g = rd_symbol(&rd, m->prior, L);
            if (g > 40) fail(E_FORMAT, "lossy block gain %d > 40 (§8.6)", g);
            for (int l = 0; l < D; l++) {
                int q = rd_symbol(&rd, m->prior + (size_t)(l + 1) * tsz, L);
                x[l] = (int64_t)(q - (1 << (L - 1))) * (1 << (12 - L));
            }
            int64_t *in = x, *out = y;
            for (int k = 0; k < m->ndec; k++) {
                layer_eval(&m->dec[k], in, out);
                in = out;
                out = (out == y) ? y2 : y;
            }
            int64_t lo = -((int64_t)1 << (w - 1)), hi = ((int64_t)1 << (w - 1)) - 1;
            for (int i = 0; i < B && t0 + i < n; i++) {
                int64_t yy = in[i];
                if (yy < -32768) yy = -32768;
                if (yy > 32768) yy = 32768;
                int64_t smp = (yy * ((int64_t)1 << g)) >> 11;
                if (smp < lo) smp = lo;
                if (smp > hi) smp = hi;
                s[t0 + i] = smp;
            }
        }
        rd_end(&rd);
        return;
    }

    lpc_t lpc;
    casc_t cs;
    ols_t *ols = NULL;
    int iml;
    memset(&cs, 0, sizeof cs);
    if (type == 5) {
        ols = malloc(sizeof *ols);
        iml = (int)rdu(r, 1);
        ols->K = (int)rdu(r, 1);
        ols->C = (int)rdu(r, 1);
        ols->sigma = (int)rdu(r, 1);
        ols->f = (int)rdu(r, 1);
        ols->rho = (int)rdu(r, 1);
        int il = (int)rdu(r, 1);
        if (iml > 55) defer("initial_mean_log2 %d > 55 (§5.4)", iml);
        if (ols->K < 1 || ols->K > 32) defer("ols_taps %d out of 1..32 (§5.4)", ols->K);
        if (ols->C > 32 - ols->K) defer("ols_cross_taps %d > 32 - ols_taps (§5.4)", ols->C);
        if (ols->sigma > 24) defer("ols_scale %d > 24 (§5.4)", ols->sigma);
        if (ols->f < 1 || ols->f > 13) defer("ols_forget %d out of 1..13 (§5.4)", ols->f);
        if (ols->rho < 1 || ols->rho > 62) defer("ols_ridge %d out of 1..62 (§5.4)", ols->rho);
        if (il < 3 || il > 10) defer("ols_interval_log2 %d out of 3..10 (§5.4)", il);
        ols->P = 1 << (il & 15);
        read_stages(r, &cs);
        read_mixer(r, &cs);
    } else {
        read_lpc(r, &lpc);
        iml = lpc.iml;
        if (type == 3 || type == 4) read_stages(r, &cs);
        if (type == 4) read_mixer(r, &cs);
    }
    uint64_t dl = rdu(r, 4);
    const uint8_t *d = need(r, (size_t)dl);
    check_ranges();
    rdec rd;
    rd_init(&rd, d, (size_t)dl);
    int64_t lat[32];
    if (type == 64) {
        size_t tsz = ((size_t)1 << model->L) - 1;
        for (int l = 0; l < model->D; l++) {
            int q = rd_symbol(&rd, model->prior + (size_t)l * tsz, model->L);
            lat[l] = (int64_t)(q - (1 << (model->L - 1))) * (1 << (12 - model->L));
        }
    }
    rctx *rc = malloc(sizeof *rc);
    rc_init(rc, iml);
    int64_t *e = o->cross;
    for (int i = 0; i < n; i++) e[i] = rc_decode(rc, &rd);
    rd_end(&rd);
    free(rc);
    o->has_cross = 1;

    if (type == 2) {
        for (int i = 0; i < n; i++) {
            s[i] = e[i] + lpc_pred(s, i, lpc.order, lpc.c, lpc.shift);
            range_check(s[i], v, i);
        }
    } else if (type == 3 || type == 4) {
        casc_init(&cs);
        for (int i = 0; i < n; i++) {
            e[i] = casc_step(&cs, i, cross, e[i]);
            s[i] = e[i] + lpc_pred(s, i, lpc.order, lpc.c, lpc.shift);
            range_check(s[i], v, i);
        }
        casc_free(&cs);
    } else if (type == 5) {
        casc_init(&cs);
        ols_init(ols);
        static int64_t zeros[65536];
        const int64_t *y = yprev ? yprev : zeros;
        for (int i = 0; i < n; i++) {
            e[i] = casc_step(&cs, i, cross, e[i]);
            int64_t pred = ols_predict(ols, i, s, y);
            s[i] = e[i] + pred;
            range_check(s[i], v, i);
            ols_learn(ols, i, s[i]);
        }
        casc_free(&cs);
        free(ols);
    } else { /* 64 MODEL_PREDICTED, §8.3-8.4 */
        model_t *m = model;
        int H = m->H, D = m->D, L = m->L;
        int64_t x[112], hbuf[112], outv[1];
        uint64_t a = (uint64_t)1 << (iml + 3);
        const int64_t C40 = (int64_t)1 << 40;
#define CL(x, lo, hi) ((x) < (lo) ? (lo) : (x) > (hi) ? (hi) : (x))
#define SCALED(val, up, k) CL((CL((val), -C40, C40) * ((int64_t)1 << (up))) >> (k), -2047, 2047)
        for (int t = 0; t < n; t++) {
            int k = bitlen64(a);
            int64_t p = lpc_pred(s, t, lpc.order, lpc.c, lpc.shift);
            for (int j = 1; j <= H; j++) x[j - 1] = t >= j ? SCALED(e[t - j], 12, k) : 0;
            for (int j = 1; j <= H; j++) x[H + j - 1] = t >= j + 1 ? SCALED(s[t - j] - s[t - j - 1], 9, k) : 0;
            int64_t last = t >= 1 ? s[t - 1] : 0;
            int64_t xl = v >= 12 ? last >> (v - 12) : last * ((int64_t)1 << (12 - v));
            x[2 * H] = CL(xl, -2047, 2047);
            x[2 * H + 1] = SCALED(p - last, 9, k);
            for (int i = 0; i < 3; i++) {
                int tt = t - 1 + i;
                x[2 * H + 2 + i] = (cross && tt >= 0 && tt < n) ? SCALED(cross[tt], 12, k) : 0;
            }
            for (int l = 0; l < D; l++) x[2 * H + 5 + l] = lat[l];
            layer_eval(&m->dec[0], x, hbuf);
            layer_eval(&m->dec[1], hbuf, outv);
            int64_t oo = CL(outv[0], -32768, 32768);
            int kk = k < 40 ? k : 40;
            int64_t delta = (oo * ((int64_t)1 << kk)) >> 12;
            int64_t et = e[t] + delta;
            e[t] = et;
            s[t] = et + p;
            range_check(s[t], v, t);
            uint64_t ae = et < 0 ? (uint64_t)0 - (uint64_t)et : (uint64_t)et;
            if (ae > (uint64_t)C40) ae = (uint64_t)C40;
            a = a + ae - (a >> 4);
        }
        (void)L;
    }
}

/* §4.2-§4.6: a block's content checks, and what the decoder keeps of it. In a stream of
 * version_minor 5 or more they run only after METADATA_CRC has been checked (§4.1, §4.7). */
static void block_content(int type, const uint8_t *body, size_t len)
{
    switch (type) {
    case 0:
        if (len != 40) fail(E_FORMAT, "STREAMINFO length %zu, not 40 (§4.2)", len);
        sample_rate = (uint32_t)be(body, 4);
        channels = body[4];
        bps = body[5];
        /* §4.2: flags and reserved before the other fields */
        if (body[6] & 0xFE) fail(E_UNSUPPORTED, "reserved STREAMINFO flag bits 0x%02x (§4.2)", body[6]);
        if (body[7]) fail(E_UNSUPPORTED, "STREAMINFO reserved byte is %d (§4.2)", body[7]);
        if (sample_rate == 0) fail(E_FORMAT, "sample_rate 0 (§4.2)");
        if (channels == 0) fail(E_FORMAT, "channels 0 (§4.2)");
        if (bps < 1 || bps > 32) fail(E_FORMAT, "bits_per_sample %d (§4.2)", bps);
        lossy = body[6] & 1;
        frame_length = (uint32_t)be(body + 8, 4);
        if (frame_length < 1 || frame_length > 65535) fail(E_FORMAT, "frame_length %u (§4.2)", frame_length);
        total_samples = be(body + 12, 8);
        channel_mask = (uint32_t)be(body + 20, 4);
        memcpy(pcm_md5, body + 24, 16);
        break;
    case 2: {
        if (len < 4) fail(E_FORMAT, "SEEKTABLE too short (§4.4)");
        uint64_t cnt = be(body, 4);
        if (len != 4 + 16 * cnt) fail(E_FORMAT, "SEEKTABLE length %zu does not match count %llu (§4.4)", len,
                                      (unsigned long long)cnt);
        break;
    }
    case 3: {
        size_t q = 0;
        if (len < 4) fail(E_FORMAT, "TAGS too short (§4.5)");
        uint64_t vl = be(body, 4);
        q = 4;
        if (vl > len - q) fail(E_FORMAT, "TAGS vendor runs past the block (§4.5)");
        if (!utf8_valid(body + q, (size_t)vl)) fail(E_FORMAT, "TAGS vendor is not UTF-8 (§4.5)");
        q += (size_t)vl;
        if (len - q < 4) fail(E_FORMAT, "TAGS count runs past the block (§4.5)");
        uint64_t cnt = be(body + q, 4);
        q += 4;
        for (uint64_t i = 0; i < cnt; i++) {
            if (len - q < 4) fail(E_FORMAT, "TAGS comment runs past the block (§4.5)");
            uint64_t cl = be(body + q, 4);
            q += 4;
            if (cl > len - q) fail(E_FORMAT, "TAGS comment runs past the block (§4.5)");
            if (!utf8_valid(body + q, (size_t)cl)) fail(E_FORMAT, "TAGS comment is not UTF-8 (§4.5)");
            if (!memchr(body + q, '=', (size_t)cl)) fail(E_FORMAT, "TAGS comment without '=' (§4.5)");
            if (body[q] == '=') fail(E_FORMAT, "TAGS comment with an empty key (§4.5)");
            q += (size_t)cl;
        }
        if (q != len) fail(E_FORMAT, "TAGS block has %zu bytes left over (§4.5)", len - q);
        break;
    }
    case 4:
        if (len < 33 || len > 288) fail(E_FORMAT, "MODEL_REF length %zu not 33..288 (§4.6)", len);
        if (32 + 1 + (size_t)body[32] != len) fail(E_FORMAT, "MODEL_REF length does not match its name (§4.6)");
        if (!utf8_valid(body + 33, body[32])) fail(E_FORMAT, "MODEL_REF name is not UTF-8 (§4.6)");
        memcpy(ref_sha, body, 32);
        memcpy(ref_name, body + 33, body[32]);
        ref_name[body[32]] = 0;
        have_ref = 1;
        break;
    case 5:
        mdata = body;
        mdata_len = len;
        have_data = 1;
        break;
    default:
        break;
    }
}

/* ---------------- output ---------------- */
static md5_ctx md5;
static uint64_t data_bytes;
static int cbytes; /* container bytes per sample */
static uint8_t *outbuf, *md5buf;

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void write_wav_header(int use_ext)
{
    uint8_t h[68];
    int fmt_len = use_ext ? 40 : 16;
    int hdr = 12 + 8 + fmt_len + 8;
    memcpy(h, "RIFF", 4);
    put_le(h + 4, (uint64_t)(hdr - 8 + data_bytes + (data_bytes & 1)), 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le(h + 16, (uint64_t)fmt_len, 4);
    put_le(h + 20, use_ext ? 0xFFFE : 1, 2);
    put_le(h + 22, (uint64_t)channels, 2);
    put_le(h + 24, sample_rate, 4);
    put_le(h + 28, (uint64_t)sample_rate * channels * cbytes, 4);
    put_le(h + 32, (uint64_t)(channels * cbytes), 2);
    put_le(h + 34, (uint64_t)(cbytes * 8), 2);
    int p = 36;
    if (use_ext) {
        put_le(h + 36, 22, 2);
        put_le(h + 38, (uint64_t)bps, 2);
        put_le(h + 40, channel_mask, 4);
        static const uint8_t guid[16] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
                                         0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
        memcpy(h + 44, guid, 16);
        p = 60;
    }
    memcpy(h + p, "data", 4);
    put_le(h + p + 4, data_bytes, 4);
    fwrite(h, 1, (size_t)p + 8, tmp_fp);
}

int main(int argc, char **argv)
{
    int argi = 1;
    while (argi + 1 < argc && !strcmp(argv[argi], "-m") && n_model_dirs < MAX_MODEL_DIRS) {
        model_dirs[n_model_dirs++] = argv[argi + 1];
        argi += 2;
    }
    if (argc - argi != 2) {
        fprintf(stderr, "usage: vaedec [-m MODEL_DIR]... IN.vae OUT.wav\n");
        return 2;
    }
    char *env = getenv("VAELAC_MODEL_PATH");
    if (env && *env) {
        env = strdup(env);
        for (char *tok = strtok(env, ":"); tok && n_model_dirs < MAX_MODEL_DIRS; tok = strtok(NULL, ":"))
            model_dirs[n_model_dirs++] = tok;
    }
    const char *in_path = argv[argi], *out_path = argv[argi + 1];
    FILE *f = fopen(in_path, "rb");
    if (!f) { fprintf(stderr, "vaedec: cannot open %s\n", in_path); return 2; }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    fsize = fread(b, 1, (size_t)sz, f);
    fclose(f);
    buf = b;

    /* §3 */
    static const uint8_t sig[8] = {0x89, 'V', 'A', 'E', 0x0D, 0x0A, 0x1A, 0x0A};
    if (fsize < 8 || memcmp(buf, sig, 8)) fail(E_NOTVAE, "not a .vae stream: bad signature (§3.1)");
    if (fsize < 10) fail(E_TRUNCATED, "stream ends inside the version (§3.2)");
    if (buf[8] != 1) fail(E_UNSUPPORTED, "unsupported major version %d (§3.2)", buf[8]);
    size_t pos = 10;
    /* §3.2, §4.1: from version_minor 5 on, METADATA_CRC is required and guards the content
     * checks of every block (they wait until it has been checked) */
    int protected_stream = buf[9] >= 5, met_crc = 0;
    struct { int type; const uint8_t *body; size_t len; } *blocks = NULL;
    size_t max_blocks = 0;

    /* §4 */
    size_t nblocks = 0;
    int seen[7] = {0};
    for (;;) {
        if (fsize - pos < 4) fail(E_TRUNCATED, "stream ends inside a metadata block header (§4.1)");
        uint32_t hdr = (uint32_t)be(buf + pos, 4);
        int is_last = hdr >> 31, type = (hdr >> 24) & 0x7F;
        size_t len = hdr & 0xFFFFFF;
        pos += 4;
        if (type == 127) fail(E_FORMAT, "forbidden metadata block type 127 (§4.1)");
        if (nblocks == 0 && type != 0) fail(E_FORMAT, "first metadata block is not STREAMINFO (§4.1)");
        if (type <= 6) {
            if (seen[type] && type != 1)
                fail(E_FORMAT, "metadata block type %d appears more than once (§4)", type);
            seen[type] = 1;
        }
        /* §4.1: what the header alone decides comes before the body is looked for */
        if (type == 0 && len != 40) fail(E_FORMAT, "STREAMINFO length %zu, not 40 (§4.2)", len);
        if (type == 2 && (len < 4 || (len - 4) % 16)) fail(E_FORMAT, "SEEKTABLE length %zu is not 4 + 16k (§4.4)", len);
        if (type == 3 && len < 8) fail(E_FORMAT, "TAGS length %zu is below 8 (§4.5)", len);
        if (type == 4 && (len < 33 || len > 288)) fail(E_FORMAT, "MODEL_REF length %zu not 33..288 (§4.6)", len);
        if (type == 6 && !is_last) fail(E_FORMAT, "METADATA_CRC is not the last metadata block (§4.7)");
        if (type == 6 && len != 4) fail(E_FORMAT, "METADATA_CRC length %zu, not 4 (§4.7)", len);
        if (len > fsize - pos) fail(E_TRUNCATED, "metadata block of %zu bytes runs past the end of the file (§4.1)", len);
        const uint8_t *body = buf + pos;
        if (type == 6) {
            /* §4.7: the CRC-32 of every byte before this field, checked whatever the version */
            uint32_t want = (uint32_t)be(body, 4), got = crc32(buf, pos);
            if (got != want) fail(E_INTEGRITY, "METADATA_CRC mismatch: stored %08x, computed %08x (§4.7)", want, got);
            met_crc = 1;
        }
        if (!protected_stream) block_content(type, body, len);
        else {
            if (nblocks == max_blocks) {
                max_blocks = max_blocks ? 2 * max_blocks : 16;
                blocks = realloc(blocks, max_blocks * sizeof *blocks);
                if (!blocks) fail(E_FORMAT, "out of memory");
            }
            blocks[nblocks].type = type;
            blocks[nblocks].body = body;
            blocks[nblocks].len = len;
        }
        pos += len;
        nblocks++;
        if (is_last) break;
    }
    if (protected_stream) {
        /* §4.1: a damaged block_type or is_last */
        if (!met_crc) fail(E_INTEGRITY, "version 1.%d stream whose metadata ends without METADATA_CRC (§4.1)", buf[9]);
        for (size_t i = 0; i < nblocks; i++) block_content(blocks[i].type, blocks[i].body, blocks[i].len);
        free(blocks);
    }

    /* output file */
    snprintf(tmp_path, sizeof tmp_path, "%s.vaedec-XXXXXX", out_path);
    int fd = mkstemp(tmp_path);
    if (fd < 0) { tmp_path[0] = 0; fprintf(stderr, "vaedec: cannot create %s\n", out_path); return 2; }
    tmp_fp = fdopen(fd, "wb");
    cbytes = (bps + 7) / 8;
    int use_ext = !(bps == 8 || bps == 16 || bps == 24 || bps == 32) || channels > 2 || channel_mask != 0;
    write_wav_header(use_ext);
    md5_init(&md5);

    /* §5 frames */
    int known = total_samples != UINT64_MAX;
    uint64_t decoded = 0, k = 0;
    int after_last = 0;
    size_t maxpay = (size_t)channels * (16 + ((size_t)frame_length * 33 + 7) / 8);
    sub_t *subs = calloc((size_t)channels, sizeof(sub_t));
    size_t alloc_n = 0;
    int64_t *crossbuf[2] = {NULL, NULL};
    for (;;) {
        if (known) {
            if (decoded == total_samples) {
                if (pos != fsize) fail(E_FORMAT, "%zu bytes after the last frame (§5.2)", fsize - pos);
                break;
            }
            if (pos == fsize) fail(E_TRUNCATED, "stream ends after %llu of %llu samples (§5.2)",
                                   (unsigned long long)decoded, (unsigned long long)total_samples);
        } else if (after_last) {
            /* §5.2: a LAST frame ends a stream of unknown length */
            if (pos != fsize) fail(E_FORMAT, "%zu bytes after the LAST frame (§5.2)", fsize - pos);
            break;
        } else if (pos == fsize) {
            /* §5.2: from version 1.5 on, an unknown-length stream ends with a LAST frame */
            if (protected_stream && k == 0)
                fail(E_TRUNCATED, "stream of unknown length ends after its metadata, with no LAST frame (§5.2)");
            if (protected_stream)
                fail(E_TRUNCATED, "stream of unknown length ends after frame %llu, which is not LAST (§5.2)",
                     (unsigned long long)(k - 1));
            break;
        }
        if (fsize - pos < 14) fail(E_TRUNCATED, "stream ends inside a frame header (§5.1)");
        const uint8_t *h = buf + pos;
        if (be(h, 2) != 0xFFF9) fail(E_FORMAT, "frame %llu: bad sync (§5.1)", (unsigned long long)k);
        if (crc8(h, 13) != h[13]) fail(E_INTEGRITY, "frame %llu: header CRC-8 mismatch (§5.1)", (unsigned long long)k);
        if (k >= ((uint64_t)1 << 32)) fail(E_FORMAT, "more than 2^32 frames (§5.1)");
        if (be(h + 2, 4) != k) fail(E_FORMAT, "frame_index %llu, expected %llu (§5.1)",
                                    (unsigned long long)be(h + 2, 4), (unsigned long long)k);
        int n = (int)be(h + 6, 2);
        if (known) {
            uint64_t want = total_samples - decoded;
            if (want > frame_length) want = frame_length;
            if ((uint64_t)n != want) fail(E_FORMAT, "frame %llu: sample_count %d, expected %llu (§5.2)",
                                          (unsigned long long)k, n, (unsigned long long)want);
        } else if (n < 1 || (uint32_t)n > frame_length)
            fail(E_FORMAT, "frame %llu: sample_count %d out of 1..%u (§5.2)", (unsigned long long)k, n, frame_length);
        int mode = h[8] & 0x7F, last = h[8] >> 7;
        if (mode > 3) fail(E_UNSUPPORTED, "reserved channel_mode %d (§5.1)", mode);
        if (mode && channels < 2) fail(E_FORMAT, "channel_mode %d with one channel (§5.1)", mode);
        if (last && known) fail(E_FORMAT, "frame %llu: LAST flag in a stream of known length (§5.2)",
                                (unsigned long long)k);
        uint64_t plen = be(h + 9, 4);
        if (plen > maxpay) fail(E_LIMIT, "payload_length %llu above the limit %zu (§5.1)", (unsigned long long)plen, maxpay);
        if (plen + 4 > fsize - pos - 14) fail(E_TRUNCATED, "stream ends inside frame %llu (§5.2)", (unsigned long long)k);
        const uint8_t *pay = h + 14;
        if (crc32(h, 14 + (size_t)plen) != (uint32_t)be(pay + plen, 4))
            fail(E_INTEGRITY, "frame %llu: CRC-32 mismatch (§5.5)", (unsigned long long)k);

        if ((size_t)n > alloc_n) {
            for (int c = 0; c < channels; c++) subs[c].vals = realloc(subs[c].vals, (size_t)n * sizeof(int64_t));
            crossbuf[0] = realloc(crossbuf[0], (size_t)n * sizeof(int64_t));
            crossbuf[1] = realloc(crossbuf[1], (size_t)n * sizeof(int64_t));
            outbuf = realloc(outbuf, (size_t)n * channels * 4);
            md5buf = realloc(md5buf, (size_t)n * channels * 4);
            alloc_n = (size_t)n;
        }
        prd r = {pay, (size_t)plen, 0};
        for (int c = 0; c < channels; c++) {
            int side = (mode == 1 && c == 1) || (mode == 3 && c == 1) || (mode == 2 && c == 0);
            int w = bps + side;
            subs[c].cross = crossbuf[c & 1];
            decode_subframe(&r, w, n, &subs[c], c ? &subs[c - 1] : NULL);
        }
        if (r.pos != r.n) fail(E_FORMAT, "frame %llu: %zu bytes after the last subframe (§5.3)",
                               (unsigned long long)k, r.n - r.pos);
        for (int c = 0; c < channels; c++)
            if (subs[c].wasted)
                for (int i = 0; i < n; i++) subs[c].vals[i] *= ((int64_t)1 << subs[c].wasted);
        if (mode) {
            int64_t *A = subs[0].vals, *B = subs[1].vals;
            for (int i = 0; i < n; i++) {
                int64_t a = A[i], bb = B[i], L, R;
                if (mode == 1) { L = a; R = a - bb; }
                else if (mode == 2) { L = a + bb; R = bb; }
                else { int64_t M2 = a * 2 | (bb & 1); L = (M2 + bb) >> 1; R = (M2 - bb) >> 1; }
                A[i] = L;
                B[i] = R;
            }
        }
        int64_t lo = -((int64_t)1 << (bps - 1)), hi = ((int64_t)1 << (bps - 1)) - 1;
#ifdef NOSHIFT /* experiment only: right-justified WAV samples */
        int sh = 0;
#else
        int sh = cbytes * 8 - bps; /* WAV: valid bits left-justified in the container */
#endif
        size_t q = 0;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < channels; c++) {
                int64_t x = subs[c].vals[i];
                if (x < lo || x > hi) fail(E_INTEGRITY, "frame %llu: sample %lld out of range (§6)",
                                           (unsigned long long)k, (long long)x);
                put_le(md5buf + q, (uint64_t)x, cbytes);
                uint64_t y = (uint64_t)x << sh;
                if (cbytes == 1) outbuf[q] = (uint8_t)(y ^ 0x80);
                else put_le(outbuf + q, y, cbytes);
                q += (size_t)cbytes;
            }
        md5_update(&md5, md5buf, q);
        fwrite(outbuf, 1, q, tmp_fp);
        data_bytes += q;
        decoded += (uint64_t)n;
        pos += 14 + (size_t)plen + 4;
        k++;
        after_last = last;
    }
    uint8_t dig[16], zero[16] = {0};
    md5_final(&md5, dig);
    if (memcmp(pcm_md5, zero, 16) && memcmp(pcm_md5, dig, 16)) fail(E_INTEGRITY, "PCM MD5 mismatch (§4.2)");
    if (data_bytes & 1) fputc(0, tmp_fp);
    fseek(tmp_fp, 0, SEEK_SET);
    write_wav_header(use_ext);
    if (fclose(tmp_fp) != 0) { tmp_fp = NULL; fail(E_FORMAT, "cannot write output"); }
    tmp_fp = NULL;
    if (rename(tmp_path, out_path) != 0) { fprintf(stderr, "vaedec: cannot rename output\n"); unlink(tmp_path); return 2; }
    if (lossy) fprintf(stderr, "vaedec: note: LOSSY stream (§8.6): the decoded samples are not the encoder's input\n");
    return 0;
}
