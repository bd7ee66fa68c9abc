#ifndef PREDICT_H
#define PREDICT_H
#include <stdint.h>

typedef struct {
    int N, shift, step, rule;
    int64_t *w, *h, *d, m;
} stage_t;

typedef struct {
    int K, cross_shift, cross_step, S;
    stage_t st[4];
    int64_t cw[32];
    int mixed, mix_shift, mix_step, mix_bias;
    int64_t a[5], bias;
} casc_t;

void casc_init(casc_t *c);
void casc_free(casc_t *c);
int64_t casc_step(casc_t *c, int t, const int64_t *cross, int64_t e);

typedef struct {
    int K, C, sigma, f, rho, P;
    int64_t R[32][32], b[32], w[32], v[32];
    long solves, abandoned;
} ols_t;
void ols_init(ols_t *o);
int64_t ols_predict(ols_t *o, int t, const int64_t *s, const int64_t *y);
void ols_learn(ols_t *o, int t, int64_t st);

#endif
