package dev.kiln.cuda;

/**
 * A CUDA runtime call returned an error. Carries the {@code cudaError_t} code, its name
 * ({@code cudaGetErrorName}) and its description ({@code cudaGetErrorString}).
 */
public final class CudaException extends NativeCallException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param call        the C function that failed, e.g. {@code cudaMalloc}
     * @param code        the {@code cudaError_t} value
     * @param errorName   its name, e.g. {@code cudaErrorMemoryAllocation}
     * @param description its description, e.g. {@code out of memory}
     */
    public CudaException(String call, int code, String errorName, String description) {
        super(call + " failed: " + errorName + " (" + code + "): " + description, call, code, errorName);
    }
}
