package dev.kiln.cuda;

import dev.kiln.graph.KilnException;

/**
 * A native call returned an error: the C function, its result code and the code's name. One type to catch for
 * any failed CUDA runtime ({@link CudaException}), driver ({@link CudaDriverException}), NVRTC
 * ({@link NvrtcException}) or NCCL ({@code dev.kiln.nccl.NcclException}) call; each library's codes are its own,
 * so read {@link #code()} with the subclass in mind.
 */
public abstract class NativeCallException extends KilnException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int code;
    private final String errorName;

    /**
     * Creates the exception.
     *
     * @param message   the whole message
     * @param call      the C function that failed, e.g. {@code cudaMalloc}
     * @param code      the library's result code
     * @param errorName the code's name, e.g. {@code cudaErrorMemoryAllocation}
     */
    protected NativeCallException(String message, String call, int code, String errorName) {
        super(message);
        this.call = call;
        this.code = code;
        this.errorName = errorName;
    }

    /**
     * The C function that failed.
     *
     * @return e.g. {@code cudaMalloc}
     */
    public final String call() {
        return call;
    }

    /**
     * The error code.
     *
     * @return the library's result value ({@code cudaError_t}, {@code CUresult}, {@code nvrtcResult} or
     *         {@code ncclResult_t})
     */
    public final int code() {
        return code;
    }

    /**
     * The error's name.
     *
     * @return e.g. {@code cudaErrorMemoryAllocation}, {@code CUDA_ERROR_INVALID_PTX}
     */
    public final String errorName() {
        return errorName;
    }
}
