#ifndef VAEDEC_H
#define VAEDEC_H
#include <stdint.h>
#include <stddef.h>

uint8_t crc8(const uint8_t *p, size_t n);
uint32_t crc32(const uint8_t *p, size_t n);

typedef struct { uint32_t h[4]; uint64_t len; uint8_t buf[64]; size_t fill; } md5_ctx;
void md5_init(md5_ctx *m);
void md5_update(md5_ctx *m, const uint8_t *p, size_t n);
void md5_final(md5_ctx *m, uint8_t out[16]);
void sha256(const uint8_t *p, size_t n, uint8_t out[32]);

/* error classes (spec §9) */
enum { E_FORMAT = 1, E_NOTVAE, E_UNSUPPORTED, E_TRUNCATED, E_INTEGRITY, E_LIMIT, E_MODEL };
void fail(int cls, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((noreturn, format(printf, 2, 3)))
#endif
    ;

/* range decoder (§7.2) */
typedef struct {
    const uint8_t *p;
    size_t n, pos;
    uint32_t range, code;
} rdec;
void rd_init(rdec *r, const uint8_t *p, size_t n);
int rd_bit(rdec *r, uint16_t *prob);
int rd_fixed(rdec *r, uint32_t prob);
uint64_t rd_direct(rdec *r, int n);
void rd_end(rdec *r);

/* residual context state (§7.3) */
typedef struct {
    uint64_t stat;
    uint16_t tree[64][64];
    uint16_t mant1[64];
    uint16_t mant2[64][2];
} rctx;
void rc_init(rctx *c, int initial_mean_log2);
int64_t rc_decode(rctx *c, rdec *r);

/* model (§8) */
typedef struct {
    int inputs, outputs, shift, act;
    int16_t *w;
    int32_t *b;
} layer_t;
typedef struct {
    int kind, D, L, H, B;
    char name[256];
    uint16_t *prior; /* T x (2^L - 1) */
    int nenc, ndec;
    layer_t enc[8], dec[8];
    uint8_t sha[32];
} model_t;
/* returns NULL-terminated error text or NULL on success */
const char *model_parse(const uint8_t *p, size_t n, model_t *m);
int rd_symbol(rdec *r, const uint16_t *tree, int L);
void layer_eval(const layer_t *l, const int64_t *x, int64_t *y);

#endif
