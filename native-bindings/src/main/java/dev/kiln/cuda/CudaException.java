package dev.kiln.cuda;

/**
 * A CUDA runtime call returned an error. Carries the {@code cudaError_t} code, its name
 * ({@code cudaGetErrorName}) and its description ({@code cudaGetErrorString}).
 */
public final class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int code;
    private final String errorName;

    /**
     * Creates the exception.
     *
     * @param call        the C function that failed, e.g. {@code cudaMalloc}
     * @param code        the {@code cudaError_t} value
     * @param errorName   its name, e.g. {@code cudaErrorMemoryAllocation}
     * @param description its description, e.g. {@code out of memory}
     */
    public CudaException(String call, int code, String errorName, String description) {
        super(call + " failed: " + errorName + " (" + code + "): " + description);
        this.code = code;
        this.errorName = errorName;
    }

    /**
     * The error code.
     *
     * @return the {@code cudaError_t} value
     */
    public int code() {
        return code;
    }

    /**
     * The error's name.
     *
     * @return e.g. {@code cudaErrorMemoryAllocation}
     */
    public String errorName() {
        return errorName;
    }
}
