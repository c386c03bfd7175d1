package dev.kiln.transport.gpu;

import dev.kiln.tensor.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;

/**
 * Element-wise sums of little-endian tensors, as NCCL's {@code ncclSum} computes them: F32, F64, I32,
 * I64, I8/U8 (wrapping), F16 and BF16 (accumulated in float, rounded to nearest even).
 */
final class Sums {

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Sums() {
    }

    /**
     * Sums {@code count} elements of every input into {@code sum}, inputs in order.
     *
     * @param dtype  the element type
     * @param count  elements per input
     * @param inputs the inputs, each at least {@code count} elements
     * @param sum    where the sum goes; may not be one of the inputs
     */
    static void sum(DType dtype, long count, List<MemorySegment> inputs, MemorySegment sum) {
        for (long i = 0; i < count; i++) {
            switch (dtype) {
                case F32 -> {
                    float s = 0;
                    for (MemorySegment in : inputs) {
                        s += in.getAtIndex(F32, i);
                    }
                    sum.setAtIndex(F32, i, s);
                }
                case F64 -> {
                    double s = 0;
                    for (MemorySegment in : inputs) {
                        s += in.getAtIndex(F64, i);
                    }
                    sum.setAtIndex(F64, i, s);
                }
                case I32 -> {
                    int s = 0;
                    for (MemorySegment in : inputs) {
                        s += in.getAtIndex(I32, i);
                    }
                    sum.setAtIndex(I32, i, s);
                }
                case I64 -> {
                    long s = 0;
                    for (MemorySegment in : inputs) {
                        s += in.getAtIndex(I64, i);
                    }
                    sum.setAtIndex(I64, i, s);
                }
                case I8, U8 -> {
                    byte s = 0; // two's complement: the same bits for signed and unsigned, wrapping like NCCL
                    for (MemorySegment in : inputs) {
                        s += in.get(ValueLayout.JAVA_BYTE, i);
                    }
                    sum.set(ValueLayout.JAVA_BYTE, i, s);
                }
                case F16 -> {
                    float s = 0;
                    for (MemorySegment in : inputs) {
                        s += Float.float16ToFloat(in.getAtIndex(I16, i));
                    }
                    sum.setAtIndex(I16, i, Float.floatToFloat16(s));
                }
                case BF16 -> {
                    float s = 0;
                    for (MemorySegment in : inputs) {
                        s += Float.intBitsToFloat(in.getAtIndex(I16, i) << 16);
                    }
                    sum.setAtIndex(I16, i, toBf16(s));
                }
            }
        }
    }

    /** Rounds to nearest, ties to even; NaN stays NaN. */
    static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }
}
