"""Issue 7 probe (stop 13): would the cross stage gain from the other channel's later residual
(the decoder has all of it: subframes decode one after the other), or from least squares?

Not part of the codec and not a test. On the subframes of every ``--every``-th corpus file that
have a cross input at level 5, the level-5 stages after variants of the cross stage: §6.4's
sign-sign stage with ``la`` taps of cross[t+1..t+la] as well, and a float recursive
least-squares one; each costed by rc_cost (min with the plain LPC residual), as stage_probe.

    python tools/research/cross_ahead_probe.py ../corpus/dev --every 3

Needs numba. Figures of stop 13 are in docs/predictor-research.md.
"""

import argparse
import sys
from pathlib import Path

import numba as nb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stage_probe as S  # noqa: E402

@nb.njit(cache=True)
def cross_la(r, cross, taps, la, shift, step):
    n=len(r); out=np.empty(n,np.int64); cw=np.zeros(taps+la,np.int64)
    for t in range(n):
        acc=0
        for j in range(-la,taps):
            i=t-j
            if i>=0 and i<n: acc+=cw[j+la]*S._clamp(cross[i])
        o=r[t]-(acc>>shift); out[t]=o
        s=S._sign(o)
        if s!=0:
            for j in range(-la,taps):
                i=t-j
                if i>=0 and i<n: cw[j+la]+=step*s*S._sign(cross[i])
    return out

@nb.njit(cache=True)
def cross_rls(r, cross, taps, la, lam, delta, every):
    n=len(r); out=np.empty(n,np.int64); m=taps+la
    R=np.eye(m)*delta; b=np.zeros(m); w=np.zeros(m); v=np.zeros(m)
    for t in range(n):
        for j in range(-la,taps):
            i=t-j
            v[j+la]=cross[i] if (i>=0 and i<n) else 0.0
        p=0.0
        for j in range(m): p+=w[j]*v[j]
        out[t]=r[t]-int(np.floor(p+0.5))
        for i in range(m):
            b[i]=lam*b[i]+v[i]*r[t]
            for j in range(m): R[i,j]=lam*R[i,j]+v[i]*v[j]
        if t%every==every-1:
            A=R.copy()
            for i in range(m): A[i,i]+=delta
            w=np.linalg.solve(A,b)
    return out

def main_after(u):
    return S.lms(S.lms(u,256,13,8,True),16,11,8,True)

VARIANTS = {
 'level5': lambda r,x: S._main_set(r,x),
 'cross la 4': lambda r,x: main_after(cross_la(r,x,16,4,13,2)),
 'cross la 8': lambda r,x: main_after(cross_la(r,x,16,8,13,2)),
 'rls cross 16 la 0': lambda r,x: main_after(cross_rls(r,x,16,0,0.998,1.0,8)),
 'rls cross 16 la 8': lambda r,x: main_after(cross_rls(r,x,16,8,0.998,1.0,8)),
 'rls cross 8 la 8': lambda r,x: main_after(cross_rls(r,x,8,8,0.998,1.0,8)),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--every", type=int, default=3)
    args = p.parse_args(argv)
    pairs = [(r, x, o) for r, x, o in S.collect(args.corpus, 5, args.every, False)
             if x is not None]
    print(len(pairs), "subframes with a cross input,", sum(len(r) for r, _, _ in pairs), "samples")
    base = None
    for name, variant in VARIANTS.items():
        total = sum(min(S.cost(r, o), S.cost(variant(r, x), o)) for r, x, o in pairs)
        base = base or total
        print(f"{name:24s} {total / 8:12.0f} bytes {100 * (total / base - 1):+.3f} %", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
