"""Issue 7 probe (stop 13): would a context-mixing residual coder beat §7's context model?

Not part of the codec and not a test. A float, lpaq-style coder over §7's binarisation (bit
length tree, two mantissa bits, raw bits): 2-6 adaptive context models (the bit length of the
running mean as §7.3, finer, a slow mean, the last two residuals' lengths, a fast mean), a
logistic mixer per (context, node), optionally an SSE stage; ideal code lengths summed over the
residuals a level codes (stage_probe.collect), against §7.3's model costed the same way.

    python tools/research/cm_probe.py ../corpus/dev --level 5 --every 3

Needs numba. Figures of stop 13 are in docs/predictor-research.md.
"""

import argparse
import math
import sys
from pathlib import Path

import numba as nb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stage_probe as S  # noqa: E402

@nb.njit(cache=True)
def bitlen(x):
    n=0
    while x>0:
        n+=1; x>>=1
    return n

@nb.njit(cache=True)
def stretch(p):
    return math.log(p / (1 - p))


@nb.njit(cache=True)
def squash(x):
    if x>30: x=30
    if x<-30: x=-30
    return 1/(1+math.exp(-x))


@nb.njit(cache=True)
def cm_bits(res, mean_log2, lr, limit, use_apm, model_direct, nin):
    # decision ids: tree node 1..63; mant1: 64+len; mant2: 128+2*len+m1; direct: 256 + len*64 + pos
    ND = 256+64*64
    NC = 1024
    P = np.full((nin, NC, ND), 0.5)
    Nn = np.zeros((nin, NC, ND))
    W = np.full((64, ND, nin), 0.3)
    A = np.zeros((64, 33))
    for c in range(64):
        for j in range(33):
            A[c,j] = squash((j-16)/2.0)
    stat = np.int64(1) << (mean_log2+4)
    slow = np.int64(1) << (mean_log2+7)
    quick = np.int64(1) << (mean_log2+1)
    u1=0; u2=0
    bits=0.0
    ctx=np.zeros(nin, np.int64)
    st=np.zeros(nin)
    for e in res:
        u = 2*e if e>=0 else -2*e-1
        b1 = bitlen(stat); c1=min(b1,63)
        # fine stat: 2 frac bits
        if b1>=3: f2 = (b1<<2) + ((stat>>(b1-3))&3)
        else: f2 = b1<<2
        bs = bitlen(slow)
        if bs>=2: f3 = (bs<<1) + ((slow>>(bs-2))&1)
        else: f3 = bs<<1
        ctx[0]=c1
        ctx[1]=min(f2,NC-1)
        if nin>2: ctx[2]=min(f3,NC-1)
        if nin>3: ctx[3]=min(bitlen(u1),31)*32+min(bitlen(u2),31)
        if nin>4: ctx[4]=min(bitlen(quick),31)*32 + min(c1,31)
        if nin>5: ctx[5]=min(c1,31)*32 + min(max(bs-7 - b1 + 4 + 8,0),31)
        length = bitlen(u)
        nd = 6
        if length>=2: nd+=1
        if length>=3: nd+=1
        if length>=4: nd += (length-3)
        node=1
        for k in range(nd):
            if k<6:
                d = node; bit = (length>>(5-k))&1
            elif k==6:
                d = 64+length; bit=(u>>(length-2))&1
            elif k==7:
                d = 128+2*length+((u>>(length-2))&1); bit=(u>>(length-3))&1
            else:
                pos = k-8  # bit index below top3
                bit = (u>>(length-4-pos))&1
                if model_direct==0 or pos>=model_direct:
                    bits += 1.0
                    continue
                d = 256 + length*64 + pos*2 + ((u>>(length-3-pos))&1)
            # mix
            dot=0.0
            for i in range(nin):
                st[i]=stretch(min(max(P[i,ctx[i],d],1e-4),1-1e-4))
                dot += W[c1,d,i]*st[i]
            pm = squash(dot)
            p = pm
            if use_apm:
                x = (stretch(min(max(pm,1e-4),1-1e-4))*2+16)
                if x<0: x=0
                if x>31.999: x=31.999
                j=int(x); fr=x-j
                pa = A[c1,j]*(1-fr)+A[c1,j+1]*fr
                p = (pm+3*pa)/4
                A[c1,j] += (bit-A[c1,j])*(1-fr)*0.02
                A[c1,j+1] += (bit-A[c1,j+1])*fr*0.02
            p = min(max(p, 1/4096), 1-1/4096)
            bits += -math.log2(p) if bit==1 else -math.log2(1-p)
            err = bit - pm
            for i in range(nin):
                W[c1,d,i] += lr*err*st[i]
                n = Nn[i,ctx[i],d]
                P[i,ctx[i],d] += (bit-P[i,ctx[i],d])/(n+1.5)
                if n<limit: Nn[i,ctx[i],d]=n+1
            if k<6: node=2*node+bit
        stat = stat + u - (stat>>4)
        slow = slow + u - (slow>>7)
        quick = quick + u - (quick>>1)
        u2=u1; u1=u
    return bits

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--level", type=int, default=5)
    p.add_argument("--every", type=int, default=3)
    args = p.parse_args(argv)
    coded = S.collect(args.corpus, args.level, args.every, True)
    base = sum(S.coder_bits(r, m, 0, 5, 0, 4, 0) for r, m in coded)
    print(f"§7.3 as specified {base / 8:.0f} bytes")
    # (learning rate, counter limit, SSE, raw bits modelled, context models)
    for variant in [(0.002, 60, 0, 0, 2), (0.002, 60, 0, 0, 4), (0.002, 60, 1, 0, 4),
                    (0.002, 60, 1, 0, 6), (0.002, 255, 1, 0, 6), (0.002, 60, 1, 2, 6)]:
        total = sum(cm_bits(r, m, *variant) for r, m in coded)
        print(variant, f"{total / 8:.0f} bytes", f"{100 * (total / base - 1):+.3f} %", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
