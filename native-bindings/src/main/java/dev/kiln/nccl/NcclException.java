package dev.kiln.nccl;

import dev.kiln.cuda.NativeCallException;

/**
 * An NCCL call returned an error; carries the {@code ncclResult_t} code, its name from {@code nccl.h}
 * ({@code ncclInvalidArgument}, ...) and {@code ncclGetErrorString}.
 */
public final class NcclException extends NativeCallException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param call        the C function that failed, e.g. {@code ncclCommInitRank}
     * @param code        the {@code ncclResult_t} value
     * @param description its description from {@code ncclGetErrorString}
     */
    public NcclException(String call, int code, String description) {
        super(call + " failed: " + name(code) + " (" + code + "): " + description, call, code, name(code));
    }

    /** The {@code ncclResult_t} enumerator's name, as {@code nccl.h} spells it. */
    private static String name(int code) {
        return switch (code) {
            case 0 -> "ncclSuccess";
            case 1 -> "ncclUnhandledCudaError";
            case 2 -> "ncclSystemError";
            case 3 -> "ncclInternalError";
            case 4 -> "ncclInvalidArgument";
            case 5 -> "ncclInvalidUsage";
            case 6 -> "ncclRemoteError";
            case 7 -> "ncclInProgress";
            default -> "ncclResult " + code;
        };
    }
}
