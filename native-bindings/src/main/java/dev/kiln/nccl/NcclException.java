package dev.kiln.nccl;

/** An NCCL call returned an error; carries the {@code ncclResult_t} code and {@code ncclGetErrorString}. */
public final class NcclException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int code;

    /**
     * Creates the exception.
     *
     * @param call        the C function that failed, e.g. {@code ncclCommInitRank}
     * @param code        the {@code ncclResult_t} value
     * @param description its description from {@code ncclGetErrorString}
     */
    public NcclException(String call, int code, String description) {
        super(call + " failed: ncclResult " + code + ": " + description);
        this.code = code;
    }

    /**
     * The error code.
     *
     * @return the {@code ncclResult_t} value
     */
    public int code() {
        return code;
    }
}
