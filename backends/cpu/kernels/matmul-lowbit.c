/* backends/cpu/kernels/matmul-lowbit.c - native MUL_MAT for the quantizer
 * formats TSR_DTYPE_INT_GROUP (GPTQ, AWQ, HQQ) and TSR_DTYPE_CODEBOOK4
 * (bitsandbytes NF4/FP4).  Not written yet: every case goes back to the
 * generic dequantize_row path of kernels/matmul-c.c. */
#include "../cpu.h"

int cpu_op_mul_mat_lowbit(cpu_ctx *c, tsr_tensor *t)
{
    (void)c;
    (void)t;
    return -1;
}
