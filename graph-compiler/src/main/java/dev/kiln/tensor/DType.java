package dev.kiln.tensor;

/** Element types of a {@link Tensor}, with their size in bytes. Data is little-endian. */
public enum DType {
    /** 32-bit IEEE float. */
    F32(4),
    /** 16-bit IEEE half float (stored raw; read as {@code short} bits). */
    F16(2),
    /** 16-bit brain float (stored raw; read as {@code short} bits). */
    BF16(2),
    /** 64-bit IEEE float. */
    F64(8),
    /** Signed 8-bit integer. */
    I8(1),
    /** Signed 32-bit integer. */
    I32(4),
    /** Signed 64-bit integer. */
    I64(8),
    /** Unsigned 8-bit integer (read as {@code byte} bits). */
    U8(1);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** {@return bytes per element} */
    public int byteSize() {
        return byteSize;
    }
}
