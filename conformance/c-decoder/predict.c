/* §6.4 CASCADE stages, §6.5 mixer, §6.6 OLS predictor with its soft float. */
#include "predict.h"
#include <stdlib.h>
#include <string.h>

static int sgn(int64_t x) { return (x > 0) - (x < 0); }
static int64_t clampH(int64_t x) { return x < -32767 ? -32767 : x > 32767 ? 32767 : x; }
static int64_t clampM(int64_t x)
{
    const int64_t M = (int64_t)1 << 36;
    return x < -M ? -M : x > M ? M : x;
}

void casc_init(casc_t *c)
{
    memset(c->cw, 0, sizeof c->cw);
    for (int k = 0; k < c->S; k++) {
        stage_t *s = &c->st[k];
        s->w = calloc((size_t)s->N * 3, sizeof(int64_t));
        s->h = s->w + s->N;
        s->d = s->h + s->N;
        s->m = 0;
    }
    for (int j = 0; j <= 4; j++) c->a[j] = (int64_t)1 << c->mix_shift;
    c->bias = 0;
}

void casc_free(casc_t *c)
{
    for (int k = 0; k < c->S; k++) free(c->st[k].w);
}

/* one sample: e is the decoded residual; returns r[t] (the LPC / least-squares residual) */
int64_t casc_step(casc_t *c, int t, const int64_t *cross, int64_t e)
{
    int S = c->S;
    int J = 0;
    if (cross) J = c->K < t + 1 ? c->K : t + 1;
    int64_t pc = 0;
    for (int j = 0; j < J; j++) pc += c->cw[j] * clampH(cross[t - j]);
    pc >>= c->cross_shift;
    int64_t p[4], u[5];
    for (int k = 0; k < S; k++) {
        stage_t *s = &c->st[k];
        int64_t acc = 0;
        for (int j = 0; j < s->N; j++) acc += s->w[j] * s->h[j];
        p[k] = acc >> s->shift;
    }
    int64_t r;
    int64_t q[5];
    if (c->mixed) {
        q[0] = clampM(pc);
        for (int k = 0; k < S; k++) q[k + 1] = clampM(p[k]);
        int64_t acc = 0;
        for (int j = 0; j <= S; j++) acc += c->a[j] * q[j];
        if (c->mix_bias > 0) acc += c->bias * ((int64_t)1 << (c->mix_bias - 1));
        int64_t mix = acc >> c->mix_shift;
        r = e + mix;
        u[0] = r - pc;
        for (int k = 0; k < S; k++) u[k + 1] = u[k] - p[k];
        int se = sgn(e);
        if (se) {
            for (int j = 0; j <= S; j++) c->a[j] += (int64_t)c->mix_step * se * sgn(q[j]);
            c->bias += (int64_t)c->mix_step * se;
        }
    } else {
        u[S] = e;
        for (int k = S - 1; k >= 0; k--) u[k] = u[k + 1] + p[k];
        r = u[0] + pc;
    }
    int s0 = sgn(u[0]);
    if (J > 0 && s0)
        for (int j = 0; j < J; j++) c->cw[j] += (int64_t)c->cross_step * s0 * sgn(cross[t - j]);
    for (int k = 0; k < S; k++) {
        stage_t *s = &c->st[k];
        int su = sgn(u[k + 1]);
        int N = s->N;
        if (su) {
            if (s->rule == 0) {
                int64_t mu = (int64_t)s->step * su;
                for (int j = 0; j < N; j++) s->w[j] += mu * sgn(s->h[j]);
            } else {
                if (su > 0) for (int j = 0; j < N; j++) s->w[j] += s->d[j];
                else for (int j = 0; j < N; j++) s->w[j] -= s->d[j];
            }
        }
        int64_t x = clampH(u[k]);
        memmove(s->h + 1, s->h, (size_t)(N - 1) * sizeof(int64_t));
        s->h[0] = x;
        if (s->rule == 1) {
            int64_t a = x < 0 ? -x : x, m = s->m, mu = s->step, g;
            if (a > 3 * m) g = 4 * mu;
            else if (3 * a > 4 * m) g = 2 * mu;
            else if (a > 0) g = mu;
            else g = 0;
            memmove(s->d + 1, s->d, (size_t)(N - 1) * sizeof(int64_t));
            s->d[0] = g * sgn(x);
            if (1 < N) s->d[1] >>= 1;
            if (2 < N) s->d[2] >>= 1;
            if (8 < N) s->d[8] >>= 1;
            s->m = m + ((a - m) >> 4);
        }
    }
    return r;
}

/* ---------------- §6.6 soft float ---------------- */
typedef struct { int64_t m, e; } sf;

static int bitlenu(uint64_t v)
{
    int n = 0;
    while (v) { n++; v >>= 1; }
    return n;
}

static sf F(int64_t x, int64_t e)
{
    sf r;
    if (x == 0) { r.m = 0; r.e = 0; return r; }
    uint64_t a = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
    int k = bitlenu(a) - 31;
    if (k > 0) a >>= k;
    else a <<= -k;
    r.m = x < 0 ? -(int64_t)a : (int64_t)a;
    r.e = e + k;
    return r;
}

static sf sf_mul(sf A, sf B) { return F(A.m * B.m, A.e + B.e); }

static int64_t T(int64_t m, int64_t d)
{
    if (d <= 31) return m * ((int64_t)1 << (31 - d));
    if (d <= 62) {
        int64_t a = (m < 0 ? -m : m) >> (d - 31);
        return m < 0 ? -a : a;
    }
    return 0;
}

static sf sf_sub(sf A, sf B)
{
    if (B.m == 0) return A;
    if (A.m == 0) { sf r = {-B.m, B.e}; return r; }
    if (A.e >= B.e) return F(A.m * ((int64_t)1 << 31) - T(B.m, A.e - B.e), A.e - 31);
    return F(T(A.m, B.e - A.e) - B.m * ((int64_t)1 << 31), B.e - 31);
}

static sf sf_div(sf A, sf B) /* B.m > 0 */
{
    int64_t am = A.m < 0 ? -A.m : A.m;
    int64_t q = (int64_t)(((uint64_t)am << 31) / (uint64_t)B.m);
    sf r = F(q, A.e - B.e - 31);
    if (A.m < 0) r.m = -r.m;
    return r;
}

static int64_t sf_weight(sf A)
{
    if (A.m == 0) return 0;
    int64_t E = A.e + 24;
    int64_t am = A.m < 0 ? -A.m : A.m, v;
    if (E >= 0 && E <= 31) {
        v = am * ((int64_t)1 << E);
        if (v > ((int64_t)1 << 30)) v = (int64_t)1 << 30;
    } else if (E > 31) v = (int64_t)1 << 30;
    else v = (-E >= 63) ? 0 : am >> (-E);
    return A.m < 0 ? -v : v;
}

static int64_t in_clamp(int64_t x, int sigma)
{
    const int64_t M = (int64_t)1 << 24;
    int64_t v = x * ((int64_t)1 << sigma);
    return v < -M ? -M : v > M ? M : v;
}

void ols_init(ols_t *o)
{
    memset(o->R, 0, sizeof o->R);
    memset(o->b, 0, sizeof o->b);
    memset(o->w, 0, sizeof o->w);
    o->solves = o->abandoned = 0;
}

static void ols_solve(ols_t *o)
{
    int N = o->K + o->C;
    static sf L[32][32], d[32], Tm[32], z[32], x[32];
    for (int j = 0; j < N; j++) {
        int64_t Rjj = o->R[j][j];
        sf Dj = F(Rjj + (Rjj >> o->rho) + 1, 0);
        for (int m = 0; m < j; m++) {
            Tm[m] = sf_mul(L[j][m], d[m]);
            Dj = sf_sub(Dj, sf_mul(L[j][m], Tm[m]));
        }
        if (Dj.m <= 0 || bitlenu((uint64_t)Dj.m) + Dj.e <= 0) { o->abandoned++; return; }
        d[j] = Dj;
        for (int i = j + 1; i < N; i++) {
            sf S = F(o->R[j][i], 0);
            for (int m = 0; m < j; m++) S = sf_sub(S, sf_mul(L[i][m], Tm[m]));
            L[i][j] = sf_div(S, d[j]);
            int64_t am = L[i][j].m < 0 ? -L[i][j].m : L[i][j].m;
            if (am != 0 && bitlenu((uint64_t)am) + L[i][j].e > 32) { o->abandoned++; return; }
        }
    }
    for (int i = 0; i < N; i++) {
        sf Z = F(o->b[i], 0);
        for (int m = 0; m < i; m++) Z = sf_sub(Z, sf_mul(L[i][m], z[m]));
        z[i] = Z;
    }
    for (int i = N - 1; i >= 0; i--) {
        sf X = sf_div(z[i], d[i]);
        for (int m = i + 1; m < N; m++) X = sf_sub(X, sf_mul(L[m][i], x[m]));
        x[i] = X;
    }
    for (int i = 0; i < N; i++) o->w[i] = sf_weight(x[i]);
    o->solves++;
}

/* prediction for sample t; s: this subframe's values so far, y: previous subframe's values */
int64_t ols_predict(ols_t *o, int t, const int64_t *s, const int64_t *y)
{
    int K = o->K, C = o->C;
    for (int j = 0; j < K; j++) o->v[j] = (t - 1 - j >= 0) ? in_clamp(s[t - 1 - j], o->sigma) : 0;
    for (int j = 0; j < C; j++) o->v[K + j] = (t - j >= 0) ? in_clamp(y[t - j], o->sigma) : 0;
    int64_t acc = 0;
    for (int j = 0; j < K + C; j++) acc += o->w[j] * o->v[j];
    return (acc + ((int64_t)1 << (23 + o->sigma))) >> (24 + o->sigma);
}

void ols_learn(ols_t *o, int t, int64_t st)
{
    int N = o->K + o->C, f = o->f;
    int64_t z = in_clamp(st, o->sigma);
    for (int i = 0; i < N; i++) {
        o->b[i] += o->v[i] * z - (o->b[i] >> f);
        for (int j = i; j < N; j++) o->R[i][j] += o->v[i] * o->v[j] - (o->R[i][j] >> f);
    }
    if (((t + 1) & (o->P - 1)) == 0) ols_solve(o);
}
