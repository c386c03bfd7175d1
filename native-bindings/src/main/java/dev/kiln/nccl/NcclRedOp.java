package dev.kiln.nccl;

/** {@code ncclRedOp_t}: the built-in reduction operations, with their C values. */
public enum NcclRedOp {
    /** {@code ncclSum}. */
    SUM(0),
    /** {@code ncclProd}. */
    PROD(1),
    /** {@code ncclMax}. */
    MAX(2),
    /** {@code ncclMin}. */
    MIN(3),
    /** {@code ncclAvg} (NCCL 2.10 and later). */
    AVG(4);

    private final int cValue;

    NcclRedOp(int cValue) {
        this.cValue = cValue;
    }

    /**
     * The value of the C enumerator.
     *
     * @return the {@code ncclRedOp_t} value
     */
    public int cValue() {
        return cValue;
    }
}
