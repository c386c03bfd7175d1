package dev.kiln.cuda;

/**
 * A CUDA driver API call returned an error. Carries the {@code CUresult} code, its name
 * ({@code cuGetErrorName}) and its description ({@code cuGetErrorString}).
 */
public final class CudaDriverException extends NativeCallException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param call        the C function that failed, e.g. {@code cuModuleLoadData}
     * @param code        the {@code CUresult} value
     * @param errorName   its name, e.g. {@code CUDA_ERROR_INVALID_PTX}
     * @param description its description, e.g. {@code a PTX JIT compilation failed}, plus what to do
     *                    where the facade knows
     */
    public CudaDriverException(String call, int code, String errorName, String description) {
        super(call + " failed: " + errorName + " (" + code + "): " + description, call, code, errorName);
    }
}
