package dev.kiln.cuda;

/** {@code cudaMemcpyKind}: the direction of a copy, with its C value. */
public enum MemcpyKind {
    /** {@code cudaMemcpyHostToHost}. */
    HOST_TO_HOST(0),
    /** {@code cudaMemcpyHostToDevice}. */
    HOST_TO_DEVICE(1),
    /** {@code cudaMemcpyDeviceToHost}. */
    DEVICE_TO_HOST(2),
    /** {@code cudaMemcpyDeviceToDevice}. */
    DEVICE_TO_DEVICE(3),
    /** {@code cudaMemcpyDefault}: inferred from the pointers (unified virtual addressing). */
    DEFAULT(4);

    private final int cValue;

    MemcpyKind(int cValue) {
        this.cValue = cValue;
    }

    /**
     * The value of the C enumerator.
     *
     * @return the {@code cudaMemcpyKind} value
     */
    public int cValue() {
        return cValue;
    }
}
