package dev.kiln.nccl;

/** {@code ncclDataType_t}, with the C values of NCCL 2.x ({@code nccl.h}). */
public enum NcclDataType {
    /** {@code ncclInt8} (also {@code ncclChar}). */
    INT8(0, 1),
    /** {@code ncclUint8}. */
    UINT8(1, 1),
    /** {@code ncclInt32} (also {@code ncclInt}). */
    INT32(2, 4),
    /** {@code ncclUint32}. */
    UINT32(3, 4),
    /** {@code ncclInt64}. */
    INT64(4, 8),
    /** {@code ncclUint64}. */
    UINT64(5, 8),
    /** {@code ncclFloat16} (also {@code ncclHalf}). */
    FLOAT16(6, 2),
    /** {@code ncclFloat32} (also {@code ncclFloat}). */
    FLOAT32(7, 4),
    /** {@code ncclFloat64} (also {@code ncclDouble}). */
    FLOAT64(8, 8),
    /** {@code ncclBfloat16} (NCCL 2.10 and later). */
    BFLOAT16(9, 2);

    private final int cValue;
    private final int bytes;

    NcclDataType(int cValue, int bytes) {
        this.cValue = cValue;
        this.bytes = bytes;
    }

    /**
     * The value of the C enumerator.
     *
     * @return the {@code ncclDataType_t} value
     */
    public int cValue() {
        return cValue;
    }

    /**
     * The size of one element.
     *
     * @return bytes per element
     */
    public int bytes() {
        return bytes;
    }
}
