/* vaeenc: minimal .vae (v1.5) encoder written from spec/vae-format.md alone.
 * Build: cc -std=c11 -O2 -Wall -Wextra -o vaeenc vaeenc.c
 * Usage: vaeenc IN.wav OUT.vae
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_LENGTH 4096u

static const char *g_tmpname;
static FILE *g_out;

static void die(const char *msg)
{
    fprintf(stderr, "vaeenc: %s\n", msg);
    if (g_out) { fclose(g_out); g_out = NULL; }
    if (g_tmpname) remove(g_tmpname);
    exit(1);
}

/* ---------- growable byte buffer ---------- */
typedef struct { uint8_t *p; size_t n, cap; } buf_t;
static void bput(buf_t *b, uint8_t v)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) die("out of memory");
    }
    b->p[b->n++] = v;
}
static void bputn(buf_t *b, const uint8_t *s, size_t n) { for (size_t i = 0; i < n; i++) bput(b, s[i]); }
static void bput_be(buf_t *b, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) bput(b, (uint8_t)(v >> (8 * i)));
}

/* ---------- CRC-8 (poly 0x07, init 0) and CRC-32 (zlib) ---------- */
static uint8_t crc8(const uint8_t *d, size_t n)
{
    uint8_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++) c = (uint8_t)((c & 0x80) ? (c << 1) ^ 0x07 : (c << 1));
    }
    return c;
}
static uint32_t crc32_tab[256];
static void crc32_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc32_tab[i] = c;
    }
}
static uint32_t crc32(const uint8_t *d, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc32_tab[(c ^ d[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---------- MD5 (RFC 1321) ---------- */
typedef struct { uint32_t h[4]; uint64_t len; uint8_t blk[64]; size_t fill; } md5_t;
static const uint32_t md5_K[64] = {
    0xd76aa478,0xe8c7b756,0x242070db,0xc1bdceee,0xf57c0faf,0x4787c62a,0xa8304613,0xfd469501,
    0x698098d8,0x8b44f7af,0xffff5bb1,0x895cd7be,0x6b901122,0xfd987193,0xa679438e,0x49b40821,
    0xf61e2562,0xc040b340,0x265e5a51,0xe9b6c7aa,0xd62f105d,0x02441453,0xd8a1e681,0xe7d3fbc8,
    0x21e1cde6,0xc33707d6,0xf4d50d87,0x455a14ed,0xa9e3e905,0xfcefa3f8,0x676f02d9,0x8d2a4c8a,
    0xfffa3942,0x8771f681,0x6d9d6122,0xfde5380c,0xa4beea44,0x4bdecfa9,0xf6bb4b60,0xbebfbc70,
    0x289b7ec6,0xeaa127fa,0xd4ef3085,0x04881d05,0xd9d4d039,0xe6db99e5,0x1fa27cf8,0xc4ac5665,
    0xf4292244,0x432aff97,0xab9423a7,0xfc93a039,0x655b59c3,0x8f0ccc92,0xffeff47d,0x85845dd1,
    0x6fa87e4f,0xfe2ce6e0,0xa3014314,0x4e0811a1,0xf7537e82,0xbd3af235,0x2ad7d2bb,0xeb86d391};
static const int md5_S[64] = {7,12,17,22,7,12,17,22,7,12,17,22,7,12,17,22,
    5,9,14,20,5,9,14,20,5,9,14,20,5,9,14,20,4,11,16,23,4,11,16,23,4,11,16,23,4,11,16,23,
    6,10,15,21,6,10,15,21,6,10,15,21,6,10,15,21};
static void md5_init(md5_t *m)
{
    m->h[0] = 0x67452301; m->h[1] = 0xefcdab89; m->h[2] = 0x98badcfe; m->h[3] = 0x10325476;
    m->len = 0; m->fill = 0;
}
static void md5_block(md5_t *m, const uint8_t *b)
{
    uint32_t w[16], a = m->h[0], bb = m->h[1], c = m->h[2], d = m->h[3];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4*i] | (uint32_t)b[4*i+1] << 8 | (uint32_t)b[4*i+2] << 16 | (uint32_t)b[4*i+3] << 24;
    for (int i = 0; i < 64; i++) {
        uint32_t f; int g;
        if (i < 16) { f = (bb & c) | (~bb & d); g = i; }
        else if (i < 32) { f = (d & bb) | (~d & c); g = (5*i + 1) & 15; }
        else if (i < 48) { f = bb ^ c ^ d; g = (3*i + 5) & 15; }
        else { f = c ^ (bb | ~d); g = (7*i) & 15; }
        uint32_t t = a + f + md5_K[i] + w[g];
        a = d; d = c; c = bb;
        bb = bb + ((t << md5_S[i]) | (t >> (32 - md5_S[i])));
    }
    m->h[0] += a; m->h[1] += bb; m->h[2] += c; m->h[3] += d;
}
static void md5_update(md5_t *m, const uint8_t *d, size_t n)
{
    m->len += n;
    while (n--) {
        m->blk[m->fill++] = *d++;
        if (m->fill == 64) { md5_block(m, m->blk); m->fill = 0; }
    }
}
static void md5_final(md5_t *m, uint8_t out[16])
{
    uint64_t bits = m->len * 8;
    uint8_t pad = 0x80, z = 0;
    md5_update(m, &pad, 1);
    while (m->fill != 56) md5_update(m, &z, 1);
    uint8_t l[8];
    for (int i = 0; i < 8; i++) l[i] = (uint8_t)(bits >> (8 * i));
    md5_update(m, l, 8);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) out[4*i+k] = (uint8_t)(m->h[i] >> (8 * k));
}

/* ---------- range encoder (§7.6) and residual coder (§7.3, §7.4) ---------- */
typedef struct { uint64_t low; uint32_t range; uint8_t cache; uint64_t cache_size; buf_t *out; } rc_t;
static void rc_init(rc_t *r, buf_t *out)
{
    r->low = 0; r->range = 0xFFFFFFFFu; r->cache = 0; r->cache_size = 1; r->out = out;
}
static void rc_shift_low(rc_t *r)
{
    if ((uint32_t)r->low < 0xFF000000u || r->low >= (1ull << 32)) {
        uint8_t carry = (uint8_t)(r->low >> 32);
        uint8_t temp = r->cache;
        do { bput(r->out, (uint8_t)(temp + carry)); temp = 0xFF; } while (--r->cache_size != 0);
        r->cache = (uint8_t)(r->low >> 24);
    }
    r->cache_size++;
    r->low = (r->low & 0xFFFFFFu) << 8;
}
static void rc_bit(rc_t *r, uint16_t *p, int bit)
{
    uint32_t bound = (r->range >> 16) * *p;
    if (!bit) { r->range = bound; *p = (uint16_t)(*p + ((65536u - *p) >> 5)); }
    else { r->low += bound; r->range -= bound; *p = (uint16_t)(*p - (*p >> 5)); }
    while (r->range < (1u << 24)) { r->range <<= 8; rc_shift_low(r); }
}
static void rc_direct(rc_t *r, uint64_t value, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        r->range >>= 1;
        if ((value >> i) & 1) r->low += r->range;
        while (r->range < (1u << 24)) { r->range <<= 8; rc_shift_low(r); }
    }
}
static void rc_finish(rc_t *r) { for (int i = 0; i < 5; i++) rc_shift_low(r); }

static int bitlen64(uint64_t v) { int n = 0; while (v) { n++; v >>= 1; } return n; }

static uint16_t prior_tree[64][64];
static void prior_init(void)
{
    for (int c = 0; c < 64; c++) {
        uint64_t W[128];
        int centre = c - 4 > 0 ? c - 4 : 0;
        for (int len = 0; len < 64; len++) {
            int d = len - centre; if (d < 0) d = -d;
            int e = 40 - d; if (e < 0) e = 0;
            W[64 + len] = 1ull << e;
        }
        for (int node = 63; node >= 1; node--) W[node] = W[2*node] + W[2*node+1];
        for (int node = 1; node < 64; node++) {
            uint64_t q = (W[2*node] * 65536u) / W[node];
            if (q < 512) q = 512;
            if (q > 65024) q = 65024;
            prior_tree[c][node] = (uint16_t)q;
        }
        prior_tree[c][0] = 0;
    }
}

typedef struct { uint16_t tree[64][64]; uint16_t mant1[64]; uint16_t mant2[64][2]; uint64_t stat; } ctx_t;

/* code residuals e[0..n-1]; appends the data bytes to out */
static void code_residuals(const int64_t *e, size_t n, int mlog2, buf_t *out)
{
    static ctx_t cx;
    memcpy(cx.tree, prior_tree, sizeof cx.tree);
    for (int i = 0; i < 64; i++) { cx.mant1[i] = 32768; cx.mant2[i][0] = cx.mant2[i][1] = 32768; }
    cx.stat = 1ull << (mlog2 + 4);
    rc_t r; rc_init(&r, out);
    for (size_t t = 0; t < n; t++) {
        uint64_t u = e[t] >= 0 ? (uint64_t)e[t] * 2 : (uint64_t)(-(e[t] + 1)) * 2 + 1;
        int len = bitlen64(u);
        int c = bitlen64(cx.stat); if (c > 63) c = 63;
        int node = 1;
        for (int i = 5; i >= 0; i--) {
            int bit = (len >> i) & 1;
            rc_bit(&r, &cx.tree[c][node], bit);
            node = 2 * node + bit;
        }
        if (len >= 2) {
            int m1 = (int)((u >> (len - 2)) & 1);
            rc_bit(&r, &cx.mant1[len], m1);
            if (len >= 3) {
                int m2 = (int)((u >> (len - 3)) & 1);
                rc_bit(&r, &cx.mant2[len][m1], m2);
                if (len >= 4) rc_direct(&r, u & ((1ull << (len - 3)) - 1), len - 3);
            }
        }
        cx.stat = cx.stat + u - (cx.stat >> 4);
    }
    rc_finish(&r);
}

/* ---------- subframe coding ---------- */
/* Fixed polynomial predictors as PREDICTED subframes: order, coef_bits, packed coefs */
static const struct { int order, coef_bits, ncb; uint8_t coefs[2]; } fixed_pred[3] = {
    {1, 2, 1, {0x40, 0}},          /* c = [1]:        01 -> 0100 0000 */
    {2, 3, 1, {0x5C, 0}},          /* c = [2,-1]:     010 111 -> 0101 1100 */
    {3, 3, 2, {0x74, 0x80}},       /* c = [3,-3,1]:   011 101 001 -> 0111 0100 1000 0000 */
};

static void encode_subframe(const int64_t *x, size_t n, int w, buf_t *pay, int64_t *res, buf_t *tmp)
{
    int allsame = 1;
    for (size_t i = 1; i < n; i++) if (x[i] != x[0]) { allsame = 0; break; }
    if (allsame) {
        bput(pay, 0); bput(pay, 0); bput_be(pay, (uint64_t)x[0], 8);
        return;
    }
    uint64_t orv = 0;
    for (size_t i = 0; i < n; i++) orv |= (uint64_t)x[i];
    int k = 0;
    while (k < 31 && k < w - 1 && !((orv >> k) & 1)) k++;
    int v = w - k;
    /* VERBATIM size */
    size_t vlen = (n * (size_t)v + 7) / 8;
    size_t best = 6 + vlen;
    /* VAEENC_FORCE_ORDER=p (testing only): keep the fixed order-p PREDICTED coding */
    buf_t bestbuf = {0}; int have_pred = 0;
    for (int f = 0; f < 3; f++) {
        int p = fixed_pred[f].order;
        int64_t s1 = 0, s2 = 0, s3 = 0;  /* s[i-1], s[i-2], s[i-3] */
        for (size_t i = 0; i < n; i++) {
            int64_t s = x[i] >> k;  /* exact: multiples of 2^k */
            int64_t pred;
            if (i == 0) pred = 0;
            else if (i == 1) pred = s1;
            else if ((int)i < p || p == 2) pred = 2 * s1 - s2;
            else if (p == 1) pred = s1;
            else pred = 3 * s1 - 3 * s2 + s3;
            res[i] = s - pred;
            s3 = s2; s2 = s1; s1 = s;
        }
        /* initial_mean_log2 from the mean zigzag value */
        uint64_t mean = 0;
        {
            long double acc = 0;
            for (size_t i = 0; i < n; i++) {
                uint64_t u = res[i] >= 0 ? (uint64_t)res[i] * 2 : (uint64_t)(-(res[i] + 1)) * 2 + 1;
                acc += (long double)u;
            }
            mean = (uint64_t)(acc / (long double)n);
        }
        int m = bitlen64(mean) - 1; if (m < 0) m = 0; if (m > 55) m = 55;
        tmp->n = 0;
        code_residuals(res, n, m, tmp);
        size_t size = 2 + 4 + fixed_pred[f].ncb + 4 + tmp->n;
        if (size < best || (getenv("VAEENC_FORCE_ORDER") && atoi(getenv("VAEENC_FORCE_ORDER")) == p)) {
            best = size; have_pred = 1;
            bestbuf.n = 0;
            bput(&bestbuf, 2); bput(&bestbuf, (uint8_t)k);
            bput(&bestbuf, (uint8_t)p); bput(&bestbuf, (uint8_t)fixed_pred[f].coef_bits);
            bput(&bestbuf, 0); bput(&bestbuf, (uint8_t)m);
            bputn(&bestbuf, fixed_pred[f].coefs, (size_t)fixed_pred[f].ncb);
            bput_be(&bestbuf, tmp->n, 4);
            bputn(&bestbuf, tmp->p, tmp->n);
        }
    }
    if (have_pred) {
        bputn(pay, bestbuf.p, bestbuf.n);
    } else {
        bput(pay, 1); bput(pay, (uint8_t)k); bput_be(pay, vlen, 4);
        uint64_t acc = 0; int nb = 0;
        uint64_t mask = (v >= 64) ? ~0ull : ((1ull << v) - 1);
        for (size_t i = 0; i < n; i++) {
            uint64_t val = (uint64_t)(x[i] >> k) & mask;
            for (int b = v - 1; b >= 0; b--) {
                acc = (acc << 1) | ((val >> b) & 1); nb++;
                if (nb == 8) { bput(pay, (uint8_t)acc); acc = 0; nb = 0; }
            }
        }
        if (nb) bput(pay, (uint8_t)(acc << (8 - nb)));
    }
    free(bestbuf.p);
}

/* ---------- WAV input ---------- */
static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--selftest") == 0) argc = 0; /* see below */
    if (argc != 3) {
        if (argc == 0) {
            /* A.3: residuals with initial_mean_log2 6 -> 23 bytes */
            static const int64_t r[20] = {0,100,0,30,31,33,34,36,37,38,40,41,42,44,45,46,49,47,53,51};
            buf_t o = {0}; prior_init(); code_residuals(r, 20, 6, &o);
            for (size_t i = 0; i < o.n; i++) printf("%02X ", o.p[i]);
            printf("(%zu)\n", o.n);
            crc32_init();
            printf("crc8 %02X crc32 %08X\n", crc8((const uint8_t *)"123456789", 9),
                   crc32((const uint8_t *)"123456789", 9));
            return 0;
        }
        fprintf(stderr, "usage: vaeenc IN.wav OUT.vae\n");
        return 2;
    }
    crc32_init(); prior_init();
    FILE *in = fopen(argv[1], "rb");
    if (!in) die("cannot open input");
    buf_t wav = {0};
    {
        uint8_t chunk[65536]; size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, in)) > 0) bputn(&wav, chunk, got);
        if (ferror(in)) die("read error on input");
        fclose(in);
    }
    const uint8_t *W = wav.p; size_t WN = wav.n;
    if (WN < 12 || memcmp(W, "RIFF", 4) || memcmp(W + 8, "WAVE", 4)) die("not a RIFF WAVE file");
    size_t pos = 12;
    const uint8_t *fmt = NULL; uint32_t fmtlen = 0;
    const uint8_t *data = NULL; uint64_t datalen = 0;
    while (pos + 8 <= WN) {
        uint32_t clen = le32(W + pos + 4);
        const uint8_t *body = W + pos + 8;
        if ((uint64_t)clen > WN - pos - 8) {
            if (!memcmp(W + pos, "data", 4)) die("data chunk runs past the end of the file");
            break;
        }
        if (!memcmp(W + pos, "fmt ", 4) && !fmt) { fmt = body; fmtlen = clen; }
        else if (!memcmp(W + pos, "data", 4) && !data) {
            if (!fmt) die("data chunk before fmt chunk");
            data = body; datalen = clen; break;
        }
        pos += 8 + (uint64_t)clen + (clen & 1);
    }
    if (!fmt) die("no fmt chunk");
    if (!data) die("no data chunk");
    if (fmtlen < 16) die("fmt chunk too short");
    uint32_t tag = le16(fmt), nch = le16(fmt + 2), rate = le32(fmt + 4);
    uint32_t align = le16(fmt + 12), cbits = le16(fmt + 14);
    uint32_t bits = cbits, mask = 0;
    if (tag == 0xFFFE) {
        static const uint8_t pcm_guid_tail[14] = {0x00,0x00,0x00,0x00,0x10,0x00,0x80,0x00,0x00,0xAA,0x00,0x38,0x9B,0x71};
        if (fmtlen < 40 || le16(fmt + 16) < 22) die("WAVE_FORMAT_EXTENSIBLE fmt chunk too short");
        bits = le16(fmt + 18);
        mask = le32(fmt + 20);
        if (le16(fmt + 24) != 1 || memcmp(fmt + 26, pcm_guid_tail, 14)) die("EXTENSIBLE subformat is not PCM");
        if (bits == 0) bits = cbits;
        if (cbits % 8 != 0) die("EXTENSIBLE container size is not whole bytes");
        if (bits > cbits) die("valid bits exceed the container size");
    } else if (tag != 1) {
        die("not PCM (only WAVE_FORMAT_PCM and EXTENSIBLE/PCM are read)");
    }
    if (nch < 1 || nch > 255) die("channel count outside 1..255");
    if (bits < 1 || bits > 32) die("bits per sample outside 1..32");
    if (rate == 0) die("sample rate 0");
    uint32_t cbytes = (cbits + 7) / 8;
    if (tag == 1) cbytes = (bits + 7) / 8;
    if (cbytes != (bits + 7) / 8) die("container size is not ceil(bits/8) bytes");
    if (align != nch * cbytes) die("nBlockAlign does not match channels and sample size");
    if (datalen % align) die("data chunk is not a whole number of sample frames");
    uint64_t total = datalen / align;
    int shift = (int)(8 * cbytes - bits);
    int32_t *pcm = malloc((size_t)(total * nch + 1) * sizeof(int32_t));
    if (!pcm) die("out of memory");
    md5_t md5; md5_init(&md5);
    for (uint64_t i = 0; i < total * nch; i++) {
        const uint8_t *p = data + i * cbytes;
        int64_t raw;
        if (cbytes == 1) raw = (int64_t)p[0] - 128;
        else {
            uint64_t u = 0;
            for (uint32_t b = 0; b < cbytes; b++) u |= (uint64_t)p[b] << (8 * b);
            if (u >> (8 * cbytes - 1)) raw = (int64_t)u - (int64_t)(1ull << (8 * cbytes)); else raw = (int64_t)u;
        }
        if (raw & ((1ll << shift) - 1)) die("sample has non-zero bits below its valid bits");
        int64_t s = raw / (1ll << shift);  /* exact */
        pcm[i] = (int32_t)s;
        uint8_t img[4];
        for (uint32_t b = 0; b < cbytes; b++) img[b] = (uint8_t)((uint64_t)s >> (8 * b));
        md5_update(&md5, img, cbytes);
    }
    uint8_t digest[16]; md5_final(&md5, digest);

    /* ---------- output ---------- */
    size_t olen = strlen(argv[2]);
    char *tmpname = malloc(olen + 16);
    if (!tmpname) die("out of memory");
    snprintf(tmpname, olen + 16, "%s.part", argv[2]);
    g_out = fopen(tmpname, "wb");
    if (!g_out) die("cannot create output");
    g_tmpname = tmpname;
    buf_t hb = {0};
    static const uint8_t sig[8] = {0x89, 'V', 'A', 'E', 0x0D, 0x0A, 0x1A, 0x0A};
    bputn(&hb, sig, 8); bput(&hb, 1); bput(&hb, 5);
    bput_be(&hb, 40u, 4);                 /* STREAMINFO, 40 */
    bput_be(&hb, rate, 4); bput(&hb, (uint8_t)nch); bput(&hb, (uint8_t)bits); bput(&hb, 0); bput(&hb, 0);
    bput_be(&hb, FRAME_LENGTH, 4); bput_be(&hb, total, 8); bput_be(&hb, mask, 4);
    bputn(&hb, digest, 16);
    /* §4.7: METADATA_CRC, the last block: the CRC-32 of every byte before its field */
    bput_be(&hb, 0x80000000u | (6u << 24) | 4u, 4);  /* is_last, METADATA_CRC, 4 */
    bput_be(&hb, crc32(hb.p, hb.n), 4);
    if (fwrite(hb.p, 1, hb.n, g_out) != hb.n) die("write error");

    int64_t *x = malloc(FRAME_LENGTH * sizeof(int64_t));
    int64_t *res = malloc(FRAME_LENGTH * sizeof(int64_t));
    if (!x || !res) die("out of memory");
    buf_t fr = {0}, tmp = {0};
    uint64_t nframes = (total + FRAME_LENGTH - 1) / FRAME_LENGTH;
    for (uint64_t f = 0; f < nframes; f++) {
        uint64_t start = f * FRAME_LENGTH;
        size_t n = (size_t)(total - start < FRAME_LENGTH ? total - start : FRAME_LENGTH);
        fr.n = 0;
        bput_be(&fr, 0xFFF9, 2); bput_be(&fr, f, 4); bput_be(&fr, n, 2); bput(&fr, 0);
        bput_be(&fr, 0, 4); bput(&fr, 0);  /* payload_length, crc8 patched below */
        for (uint32_t c = 0; c < nch; c++) {
            for (size_t i = 0; i < n; i++) x[i] = pcm[(start + i) * nch + c];
            encode_subframe(x, n, (int)bits, &fr, res, &tmp);
        }
        uint64_t plen = fr.n - 14;
        uint64_t limit = (uint64_t)nch * (16 + ((uint64_t)FRAME_LENGTH * 33 + 7) / 8);
        if (plen > limit) die("internal error: payload over the limit");
        for (int i = 0; i < 4; i++) fr.p[9 + i] = (uint8_t)(plen >> (8 * (3 - i)));
        fr.p[13] = crc8(fr.p, 13);
        bput_be(&fr, crc32(fr.p, fr.n), 4);
        if (fwrite(fr.p, 1, fr.n, g_out) != fr.n) die("write error");
    }
    if (fclose(g_out) != 0) { g_out = NULL; die("write error"); }
    g_out = NULL;
    if (rename(tmpname, argv[2]) != 0) die("cannot rename output into place");
    return 0;
}
