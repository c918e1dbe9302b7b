#!/usr/bin/env python3
"""make_tiny_t5.py OUTDIR: a 1-layer umT5 encoder of random bf16 weights whose output dim is
4096 (the Wan DiT's text_dim), vocab 2500 (the byte-fallback tokenizer fixture
tests/fixtures/wan/t5/bytefb.model fits), for end-to-end runs without the 11 GB umT5-XXL.
Writes OUTDIR/t5_4096.safetensors and OUTDIR/t5_4096_config.json. Pure Python (no numpy):
random mantissas and signs at a fixed exponent per tensor, norm gains 1."""
import sys
import os, json, struct, array
out = sys.argv[1] if len(sys.argv) > 1 else "."
V,D,A,F,H,L,B=2500,4096,256,256,4,1,32
def rnd(n,E):
    a=array.array('H',os.urandom(2*n))
    m=E<<7
    return array.array('H',[(x & 0x807f)|m for x in a]).tobytes()
def ones(n): return array.array('H',[0x3f80]*n).tobytes()
t=[("token_embedding.weight",(V,D),rnd(V*D,126))]
for i in range(L):
    p="blocks.%d."%i
    t.append((p+"norm1.weight",(D,),ones(D)))
    for n in "qkv": t.append((p+"attn.%s.weight"%n,(A,D),rnd(A*D,121)))
    t.append((p+"attn.o.weight",(D,A),rnd(A*D,123)))
    t.append((p+"norm2.weight",(D,),ones(D)))
    t.append((p+"ffn.gate.0.weight",(F,D),rnd(F*D,121)))
    t.append((p+"ffn.fc1.weight",(F,D),rnd(F*D,121)))
    t.append((p+"ffn.fc2.weight",(D,F),rnd(F*D,123)))
    t.append((p+"pos_embedding.embedding.weight",(B,H),rnd(B*H,126)))
t.append(("norm.weight",(D,),ones(D)))
hdr={};off=0
for k,s,b in t:
    hdr[k]={"dtype":"BF16","shape":list(s),"data_offsets":[off,off+len(b)]}; off+=len(b)
h=json.dumps(hdr).encode(); h+=b" "*((8-len(h)%8)%8)
with open(os.path.join(out, "t5_4096.safetensors"),"wb") as f:
    f.write(struct.pack("<Q",len(h))); f.write(h)
    for _,_,b in t: f.write(b)
json.dump({"vocab_size":V,"dim":D,"dim_attn":A,"dim_ffn":F,"num_heads":H,"num_layers":L,"num_buckets":B},open(os.path.join(out, "t5_4096_config.json"),"w"))
