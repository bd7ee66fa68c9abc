/* §7 residual coding and §8.1/§8.2 model file and latent symbols. */
#include "vaedec.h"
#include <stdlib.h>
#include <string.h>

static int bitlen64(uint64_t v)
{
    int n = 0;
    while (v) { n++; v >>= 1; }
    return n;
}

static uint8_t rd_next(rdec *r)
{
    if (r->pos >= r->n) fail(E_FORMAT, "coded residuals end before the last sample (§7.2)");
    return r->p[r->pos++];
}

void rd_init(rdec *r, const uint8_t *p, size_t n)
{
    r->p = p; r->n = n; r->pos = 0;
    if (rd_next(r) != 0) fail(E_FORMAT, "range coder: first byte is not 0 (§7.2)");
    uint32_t code = 0;
    for (int i = 0; i < 4; i++) code = (code << 8) | rd_next(r);
    r->code = code;
    r->range = 0xFFFFFFFFu;
    if (code == 0xFFFFFFFFu) fail(E_FORMAT, "range coder: initial code is 0xFFFFFFFF (§7.2)");
}

static void rd_norm(rdec *r)
{
    while (r->range < (1u << 24)) {
        r->range <<= 8;
        r->code = (r->code << 8) | rd_next(r);
    }
}

int rd_bit(rdec *r, uint16_t *prob)
{
    uint32_t p = *prob;
    uint32_t bound = (r->range >> 16) * p;
    int bit;
    if (r->code < bound) {
        r->range = bound;
        p = p + ((65536 - p) >> 5);
        bit = 0;
    } else {
        r->code -= bound;
        r->range -= bound;
        p = p - (p >> 5);
        bit = 1;
    }
    *prob = (uint16_t)p;
    rd_norm(r);
    return bit;
}

int rd_fixed(rdec *r, uint32_t p)
{
    uint32_t bound = (r->range >> 16) * p;
    int bit;
    if (r->code < bound) { r->range = bound; bit = 0; }
    else { r->code -= bound; r->range -= bound; bit = 1; }
    rd_norm(r);
    return bit;
}

uint64_t rd_direct(rdec *r, int n)
{
    uint64_t v = 0;
    while (n--) {
        r->range >>= 1;
        int bit = 0;
        if (r->code >= r->range) { r->code -= r->range; bit = 1; }
        v = (v << 1) | (uint64_t)bit;
        rd_norm(r);
    }
    return v;
}

void rd_end(rdec *r)
{
    if (r->pos != r->n)
        fail(E_FORMAT, "coded residuals: %zu bytes left over (§7.5)", r->n - r->pos);
}

/* §7.3 prior */
static uint16_t prior_tree[64][64];
static int prior_done;
static void prior_build(void)
{
    for (int c = 0; c < 64; c++) {
        uint64_t W[128];
        int centre = c - 4 > 0 ? c - 4 : 0;
        for (int len = 0; len < 64; len++) {
            int d = len - centre;
            if (d < 0) d = -d;
            int e = 40 - d;
            if (e < 0) e = 0;
            W[64 + len] = (uint64_t)1 << e;
        }
        for (int node = 63; node >= 1; node--) W[node] = W[2 * node] + W[2 * node + 1];
        prior_tree[c][0] = 0;
        for (int node = 1; node < 64; node++) {
            uint64_t q = (W[2 * node] * 65536) / W[node];
            if (q < 512) q = 512;
            if (q > 65024) q = 65024;
            prior_tree[c][node] = (uint16_t)q;
        }
    }
    prior_done = 1;
}

void rc_init(rctx *c, int m)
{
    if (!prior_done) prior_build();
    c->stat = (uint64_t)1 << (m + 4);
    memcpy(c->tree, prior_tree, sizeof prior_tree);
    for (int i = 0; i < 64; i++) c->mant1[i] = c->mant2[i][0] = c->mant2[i][1] = 32768;
}

int64_t rc_decode(rctx *c, rdec *r)
{
    int ctx = bitlen64(c->stat);
    if (ctx > 63) ctx = 63;
    int node = 1;
    for (int i = 0; i < 6; i++) node = 2 * node + rd_bit(r, &c->tree[ctx][node]);
    int len = node - 64;
    if (len > 56) fail(E_FORMAT, "residual bit length %d > 56 (§7.4)", len);
    uint64_t u;
    if (len < 2) u = (uint64_t)len;
    else {
        int m1 = rd_bit(r, &c->mant1[len]);
        u = 2 | (uint64_t)m1;
        if (len >= 3) {
            u = (u << 1) | (uint64_t)rd_bit(r, &c->mant2[len][m1]);
            if (len >= 4) u = (u << (len - 3)) | rd_direct(r, len - 3);
        }
    }
    int64_t e = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    c->stat = c->stat + u - (c->stat >> 4);
    return e;
}

/* §8.2 */
int rd_symbol(rdec *r, const uint16_t *tree, int L)
{
    int node = 1;
    for (int i = 0; i < L; i++) node = 2 * node + rd_fixed(r, tree[node - 1]);
    return node - (1 << L);
}

/* §8.1 layer evaluation, exact in 64 bits */
void layer_eval(const layer_t *l, const int64_t *x, int64_t *y)
{
    for (int i = 0; i < l->outputs; i++) {
        const int16_t *w = l->w + (size_t)i * l->inputs;
        int64_t acc = l->b[i];
        for (int j = 0; j < l->inputs; j++) acc += (int64_t)w[j] * x[j];
        acc >>= l->shift;
        if (l->act == 1) { if (acc < 0) acc = 0; if (acc > 2047) acc = 2047; }
        y[i] = acc;
    }
}

/* §8.1 model file */
typedef struct { const uint8_t *p; size_t n, pos; int bad; } mrd;
static uint64_t mget(mrd *m, int bytes)
{
    if (m->pos + (size_t)bytes > m->n) { m->bad = 1; return 0; }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | m->p[m->pos++];
    return v;
}

int utf8_valid(const uint8_t *s, size_t n);

static const char *parse_layers(mrd *r, layer_t *ls, int *count)
{
    int c = (int)mget(r, 1);
    if (r->bad) return "truncated";
    if (c < 1 || c > 8) return "layer count not 1..8";
    *count = c;
    for (int k = 0; k < c; k++) {
        layer_t *l = &ls[k];
        l->inputs = (int)mget(r, 2);
        l->outputs = (int)mget(r, 2);
        l->shift = (int)mget(r, 1);
        l->act = (int)mget(r, 1);
        if (r->bad) return "truncated";
        if (l->inputs < 1 || l->inputs > 1024 || l->outputs < 1 || l->outputs > 1024)
            return "layer size out of range";
        if (l->shift > 31) return "layer shift > 31";
        if (l->act > 1) return "unknown activation";
        size_t nw = (size_t)l->inputs * l->outputs;
        if (r->pos + nw * 2 + (size_t)l->outputs * 4 > r->n) return "truncated";
        l->w = malloc(nw * sizeof(int16_t));
        l->b = malloc((size_t)l->outputs * sizeof(int32_t));
        for (size_t i = 0; i < nw; i++) {
            int16_t w = (int16_t)(uint16_t)mget(r, 2);
            if (w > 8191 || w < -8191) return "weight out of range";
            l->w[i] = w;
        }
        for (int i = 0; i < l->outputs; i++) {
            int32_t b = (int32_t)(uint32_t)mget(r, 4);
            if (b > (1 << 27) || b < -(1 << 27)) return "bias out of range";
            l->b[i] = b;
        }
        if (k > 0 && l->inputs != ls[k - 1].outputs) return "layer inputs do not match previous outputs";
        if (k > 0 && ls[k - 1].act != 1) return "a layer before the last is not RELU";
    }
    return NULL;
}

const char *model_parse(const uint8_t *p, size_t n, model_t *m)
{
    mrd r = {p, n, 0, 0};
    memset(m, 0, sizeof *m);
    sha256(p, n, m->sha);
    if (n < 8 || memcmp(p, "VAEMODEL", 8)) return "bad magic";
    r.pos = 8;
    if (mget(&r, 1) != 1) return "format_version is not 1";
    m->kind = (int)mget(&r, 1);
    if (m->kind != 1 && m->kind != 2) return "unknown kind";
    size_t nl = (size_t)mget(&r, 1);
    if (r.bad || r.pos + nl > n) return "truncated";
    if (!utf8_valid(p + r.pos, nl)) return "name is not UTF-8";
    memcpy(m->name, p + r.pos, nl);
    m->name[nl] = 0;
    r.pos += nl;
    size_t dl = (size_t)mget(&r, 4);
    if (r.bad || r.pos + dl > n) return "truncated";
    if (!utf8_valid(p + r.pos, dl)) return "description is not UTF-8";
    r.pos += dl;
    m->D = (int)mget(&r, 1);
    m->L = (int)mget(&r, 1);
    m->H = (int)mget(&r, 1);
    m->B = (int)mget(&r, 2);
    if (r.bad) return "truncated";
    if (m->D < 1 || m->D > 32) return "latent_dim out of range";
    if (m->kind == 1) {
        if (m->L < 1 || m->L > 12) return "latent_levels_log2 out of range";
        if (m->H < 1 || m->H > 32) return "history out of range";
        if (m->B != 0) return "block must be 0";
    } else {
        if (m->L < 6 || m->L > 12) return "latent_levels_log2 out of range";
        if (m->H != 0) return "history must be 0";
        if (m->B < 1 || m->B > 1024) return "block out of range";
    }
    int T = m->D + (m->kind == 2);
    size_t np = (size_t)T * ((1u << m->L) - 1);
    if (r.pos + np * 2 > n) return "truncated";
    m->prior = malloc(np * sizeof(uint16_t));
    for (size_t i = 0; i < np; i++) {
        m->prior[i] = (uint16_t)mget(&r, 2);
        if (m->prior[i] == 0) return "prior probability 0";
    }
    const char *err = parse_layers(&r, m->enc, &m->nenc);
    if (err) return err;
    err = parse_layers(&r, m->dec, &m->ndec);
    if (err) return err;
    if (r.pos != n) return "bytes after the last decoder layer";
    layer_t *e0 = &m->enc[0], *eN = &m->enc[m->nenc - 1];
    layer_t *d0 = &m->dec[0], *dN = &m->dec[m->ndec - 1];
    if (m->kind == 1) {
        if (e0->inputs != 26 || eN->outputs != 2 * m->D) return "encoder shape";
        if (m->ndec != 2) return "RESIDUAL decoder must have 2 layers";
        if (d0->inputs != 2 * m->H + 5 + m->D || d0->inputs > 112) return "decoder input size";
        if (d0->outputs > 112) return "hidden size > 112";
        if (dN->outputs != 1 || dN->act != 0) return "decoder output";
    } else {
        if (e0->inputs != m->B || eN->outputs != 2 * m->D) return "encoder shape";
        if (d0->inputs != m->D || dN->outputs != m->B || dN->act != 0) return "decoder shape";
    }
    return NULL;
}
