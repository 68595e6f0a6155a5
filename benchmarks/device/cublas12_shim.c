/* libcublas.so.12 for the faiss-gpu-cu12 wheel on a machine that has only cuBLAS 13.
 *
 * Benchmark plumbing, not part of bindsearch. The device machines lent to this project carry
 * CUDA 13 (PyTorch cu130) and cannot download anything; the cuBLAS 12 wheel FAISS's CUDA 12
 * build links against is 580 MB, beyond what a call may carry. FAISS imports eight cuBLAS
 * entry points, all with the same C signature in cuBLAS 12 and 13 and all taking only integer
 * and pointer arguments, so each is forwarded unchanged to libcublas.so.13. Arguments are
 * passed through as 24 integer-class words (x86-64 System V): surplus words are ignored by
 * the callee. The version script gives the symbols the `libcublas.so.12` version FAISS asks
 * for. Build: see setup.sh beside this file.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef long W;
typedef W (*fn24)(W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W, W);

static void *cublas13(void) {
    static void *handle;
    if (!handle) {
        handle = dlopen("libcublas.so.13", RTLD_NOW | RTLD_GLOBAL);
        if (!handle) {
            fprintf(stderr, "cublas12 shim: %s\n", dlerror());
            abort();
        }
    }
    return handle;
}

#define FORWARD(name)                                                                          \
    W name(W a, W b, W c, W d, W e, W f, W g, W h, W i, W j, W k, W l, W m, W n, W o, W p,    \
           W q, W r, W s, W t, W u, W v, W w, W x) {                                           \
        static fn24 real;                                                                      \
        if (!real) real = (fn24)dlsym(cublas13(), #name);                                      \
        return real(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u, v, w, x);  \
    }

FORWARD(cublasCreate_v2)
FORWARD(cublasDestroy_v2)
FORWARD(cublasSetStream_v2)
FORWARD(cublasGetMathMode)
FORWARD(cublasSetMathMode)
FORWARD(cublasSgemmEx)
FORWARD(cublasGemmEx)
FORWARD(cublasGemmStridedBatchedEx)
