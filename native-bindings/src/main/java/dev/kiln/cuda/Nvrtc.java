package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Checked Java façade over {@link NvrtcLibrary}: compiles CUDA C++ source to PTX at run time, for
 * {@link CudaDriver#loadModule}. Every call checks its {@code nvrtcResult} and throws
 * {@link NvrtcException} on failure, with the compiler's log when the source did not compile.
 *
 * <p>NVRTC is available when libnvrtc loads and answers {@code nvrtcVersion}; no GPU or driver is
 * needed. This is probed once, on first use. When it is not available every call here throws
 * {@link NativeUnavailableException} carrying {@link #unavailableReason()}. All methods are
 * thread-safe (each compilation uses its own program).
 */
public final class Nvrtc {
    private Nvrtc() {
    }

    private static final class Probe {
        static final String FAILURE = probe();
    }

    private static String probe() {
        String failure = NvrtcLibrary.loadFailure();
        if (failure != null) {
            return failure;
        }
        try (Arena arena = Arena.ofConfined()) {
            int rc = NvrtcLibrary.nvrtcVersion(arena.allocate(JAVA_INT), arena.allocate(JAVA_INT));
            return rc == NvrtcLibrary.NVRTC_SUCCESS ? null : "libnvrtc from " + NvrtcLibrary.source()
                    + " is unusable: nvrtcVersion returned " + errorString(rc) + " (" + rc + ")";
        } catch (RuntimeException e) {
            return "NVRTC probe failed: " + e;
        }
    }

    /**
     * Says whether NVRTC can be used: libnvrtc loaded and answering.
     *
     * @return true when the calls of this class can succeed
     */
    public static boolean isAvailable() {
        return Probe.FAILURE == null;
    }

    /**
     * Why NVRTC cannot be used, with what to do about it (what was looked for, where, which
     * property to set).
     *
     * @return the diagnosis, or an empty string when {@link #isAvailable()}
     */
    public static String unavailableReason() {
        return Probe.FAILURE == null ? "" : Probe.FAILURE;
    }

    private static void require() {
        if (Probe.FAILURE != null) {
            throw new NativeUnavailableException(Probe.FAILURE);
        }
    }

    private static void check(int rc, String call) {
        if (rc != NvrtcLibrary.NVRTC_SUCCESS) {
            throw new NvrtcException(call, rc, errorString(rc), "");
        }
    }

    private static String errorString(int rc) {
        return Cuda.cString(NvrtcLibrary.nvrtcGetErrorString(rc));
    }

    /**
     * The version of the loaded libnvrtc.
     *
     * @return 1000 * major + 10 * minor, as CUDA versions are given, e.g. 13000
     * @throws NativeUnavailableException when NVRTC is unavailable
     * @throws NvrtcException             on an NVRTC error
     */
    public static int version() {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment major = arena.allocate(JAVA_INT);
            MemorySegment minor = arena.allocate(JAVA_INT);
            check(NvrtcLibrary.nvrtcVersion(major, minor), "nvrtcVersion");
            return major.get(JAVA_INT, 0) * 1000 + minor.get(JAVA_INT, 0) * 10;
        }
    }

    /**
     * Compiles one CUDA C++ translation unit to PTX. The program is destroyed before this returns,
     * whether or not compilation succeeded. Blocks while compiling (typically tens to hundreds of
     * milliseconds).
     *
     * @param source      the CUDA C++ source; declare kernels {@code extern "C"} to find them by
     *                    their plain names in {@link CudaDriver#function}
     * @param programName the name used in the log's messages, e.g. {@code add_one.cu}; empty for
     *                    {@code default_program}
     * @param options     NVRTC options, e.g. {@code --gpu-architecture=compute_90}; may be empty
     * @return the PTX text, NUL-terminated as NVRTC returns it (ready for {@link CudaDriver#loadModule})
     * @throws NativeUnavailableException when NVRTC is unavailable
     * @throws NvrtcException             on an NVRTC error; when the source does not compile
     *                                    ({@code NVRTC_ERROR_COMPILATION}) or an option is invalid, it
     *                                    carries the program log
     */
    public static byte[] compileToPtx(String source, String programName, List<String> options) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment program = arena.allocate(ADDRESS);
            check(NvrtcLibrary.nvrtcCreateProgram(program, arena.allocateFrom(source), arena.allocateFrom(programName),
                    0, MemorySegment.NULL, MemorySegment.NULL), "nvrtcCreateProgram");
            byte[] ptx;
            try {
                ptx = compile(arena, program.get(ADDRESS, 0), options);
            } catch (RuntimeException e) {
                NvrtcLibrary.nvrtcDestroyProgram(program); // the compilation failure is the one to report
                throw e;
            }
            check(NvrtcLibrary.nvrtcDestroyProgram(program), "nvrtcDestroyProgram");
            return ptx;
        }
    }

    private static byte[] compile(Arena arena, MemorySegment program, List<String> options) {
        MemorySegment optionArray = options.isEmpty() ? MemorySegment.NULL : arena.allocate(ADDRESS, options.size());
        for (int i = 0; i < options.size(); i++) {
            optionArray.setAtIndex(ADDRESS, i, arena.allocateFrom(options.get(i)));
        }
        int rc = NvrtcLibrary.nvrtcCompileProgram(program, options.size(), optionArray);
        if (rc != NvrtcLibrary.NVRTC_SUCCESS) {
            throw new NvrtcException("nvrtcCompileProgram", rc, errorString(rc), log(arena, program));
        }
        MemorySegment size = arena.allocate(JAVA_LONG);
        check(NvrtcLibrary.nvrtcGetPTXSize(program, size), "nvrtcGetPTXSize");
        MemorySegment ptx = arena.allocate(size.get(JAVA_LONG, 0));
        check(NvrtcLibrary.nvrtcGetPTX(program, ptx), "nvrtcGetPTX");
        return ptx.toArray(JAVA_BYTE);
    }

    private static String log(Arena arena, MemorySegment program) {
        MemorySegment size = arena.allocate(JAVA_LONG);
        int rc = NvrtcLibrary.nvrtcGetProgramLogSize(program, size);
        if (rc != NvrtcLibrary.NVRTC_SUCCESS) {
            return "(no log: nvrtcGetProgramLogSize returned " + errorString(rc) + ")";
        }
        MemorySegment log = arena.allocate(Math.max(1, size.get(JAVA_LONG, 0)));
        rc = NvrtcLibrary.nvrtcGetProgramLog(program, log);
        return rc == NvrtcLibrary.NVRTC_SUCCESS ? log.getString(0)
                : "(no log: nvrtcGetProgramLog returned " + errorString(rc) + ")";
    }
}
