package dev.kiln.cuda;

/**
 * An NVRTC call returned an error. Carries the {@code nvrtcResult} code, its name
 * ({@code nvrtcGetErrorString}) and, when compilation failed, the full program log (the compiler's
 * errors and warnings, with file names and line numbers).
 */
public final class NvrtcException extends NativeCallException {
    private static final long serialVersionUID = 1L;

    private final String log;

    /**
     * Creates the exception.
     *
     * @param call      the C function that failed, e.g. {@code nvrtcCompileProgram}
     * @param code      the {@code nvrtcResult} value
     * @param errorName its name from {@code nvrtcGetErrorString}, e.g. {@code NVRTC_ERROR_COMPILATION}
     * @param log       the program log, or an empty string when there is none
     */
    public NvrtcException(String call, int code, String errorName, String log) {
        super(call + " failed: " + errorName + " (" + code + ")" + (log.isBlank() ? "" : "; program log:\n" + log),
                call, code, errorName);
        this.log = log;
    }

    /**
     * The program log of the failed compilation.
     *
     * @return the log, or an empty string when the failure was not in compilation
     */
    public String log() {
        return log;
    }
}
