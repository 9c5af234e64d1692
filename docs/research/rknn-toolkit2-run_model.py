# usage: run_model.py MODEL QUANT(int8|fp16) DATASET_LINES(';'-sep, ',' inside -> space) INPUT_NPYS(',') [extra]
import os, sys, time, json, traceback
import numpy as np
model, q, ds, inp = sys.argv[1:5]
extra = sys.argv[5] if len(sys.argv) > 5 else ''
def snap(tag):
    fs = sorted(os.path.relpath(os.path.join(d,f)) for d,_,ff in os.walk('.') for f in ff)
    print(f'@@CWD after {tag}: {fs}', file=sys.stderr, flush=True)
def step(name, fn):
    t = time.time()
    try:
        r = fn()
    except BaseException as e:
        print(f'@@STEP {name} RAISED {type(e).__name__}: {e!r:.500} ({time.time()-t:.3f}s)', file=sys.stderr, flush=True)
        traceback.print_exc(); snap(name); sys.stderr.flush(); sys.stdout.flush(); os._exit(3)
    print(f'@@STEP {name} -> {r!r:.300} ({time.time()-t:.3f}s)', file=sys.stderr, flush=True); snap(name); return r
from rknn.api import RKNN
with open('dataset.txt','w') as f:
    for line in ds.split(';'): f.write(line.replace(',', ' ') + '\n')
r = RKNN(verbose=True, verbose_file='build.log')
step('config', lambda: r.config(target_platform='rk3588'))
step('load_onnx', lambda: r.load_onnx(model=model))
if q == 'int8':
    ret = step('build', lambda: r.build(do_quantization=True, dataset='dataset.txt'))
else:
    ret = step('build', lambda: r.build(do_quantization=False))
if ret != 0: sys.exit(0)
step('export_rknn', lambda: r.export_rknn('m.rknn'))
step('init_runtime', lambda: r.init_runtime())
xs = [np.load(p) for p in inp.split(',')]
outs = step('inference', lambda: r.inference(inputs=xs, data_format='nchw' if xs[0].ndim == 4 else None))
import onnxruntime as ort
s = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
refs = s.run(None, {i.name: x for i, x in zip(s.get_inputs(), xs)})
for k,(o,rf) in enumerate(zip(outs, refs)):
    print(f'@@OUT{k} rknn dtype={o.dtype} shape={o.shape} ref dtype={rf.dtype} shape={rf.shape}', file=sys.stderr)
    o = np.asarray(o, dtype=np.float64).reshape(rf.shape); rf = rf.astype(np.float64)
    cos = float((o*rf).sum()/(np.linalg.norm(o)*np.linalg.norm(rf)+1e-30)); rel = float(np.linalg.norm(o-rf)/(np.linalg.norm(rf)+1e-30))
    print(f'@@CMP{k} cos={cos:.6f} rel_l2={rel:.6f} rknn={o.ravel()[:6]} ref={rf.ravel()[:6]}', file=sys.stderr)
if extra == 'acc':
    step('accuracy_analysis', lambda: r.accuracy_analysis(inputs=inp.split(','), output_dir='snapshot'))
r.release()
