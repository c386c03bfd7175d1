package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.util.ArrayList;
import java.util.List;

/**
 * Raw FFM bindings to libnvrtc (CUDA runtime compilation, {@code nvrtc.h}, CUDA 12 and 13), in the
 * jextract layout: one static method per C function, named after it ({@code nvrtcResult} as
 * {@code int}, {@code nvrtcProgram} (an opaque pointer) and strings as {@link MemorySegment},
 * {@code size_t} as {@code long}). Out-parameters and buffers are segments the caller allocates.
 *
 * <p>The library is looked up on first use of a function: {@link #PATH_PROPERTY}, then
 * {@link #SONAMES} through the dynamic linker, then {@link #folders()} (the CUDA toolkit folders
 * and the lib folders of the Python {@code nvidia-cuda-nvrtc} wheels). Loading this class never
 * fails; when the library cannot be loaded every function throws
 * {@link NativeUnavailableException} with the diagnosis. NVRTC needs no GPU and no driver. Use
 * {@link Nvrtc} for checked calls.
 *
 * <p>Thread-safety is NVRTC's: different programs may be used from different threads at once; one
 * program must not be used by two threads at once.
 */
public final class NvrtcLibrary {
    /** The system property naming libnvrtc (the file, or the folder holding it). */
    public static final String PATH_PROPERTY = "kiln.nvrtc.path";
    /** The file names tried, preferred first. */
    public static final List<String> SONAMES = List.of("libnvrtc.so.13", "libnvrtc.so.12");

    /** {@code NVRTC_SUCCESS}. */
    public static final int NVRTC_SUCCESS = 0;
    /** {@code NVRTC_ERROR_COMPILATION}: the source did not compile; the program log says why. */
    public static final int NVRTC_ERROR_COMPILATION = 6;

    private NvrtcLibrary() {
    }

    /**
     * The folders tried after the dynamic linker, as patterns (see {@link NativeLibrary#expand}):
     * those libcudart is looked for in ({@link CudaRuntime#FOLDERS}), then {@code nvidia/cuda_nvrtc/lib},
     * {@code nvidia/cu13/lib} and {@code nvidia/cu12/lib} under the Python site-packages folders
     * (see {@link NativeLibrary#pythonPackageFolders}).
     *
     * @return the folder patterns, in order
     */
    public static List<String> folders() {
        List<String> folders = new ArrayList<>(CudaRuntime.FOLDERS);
        folders.addAll(NativeLibrary.pythonPackageFolders(
                List.of("nvidia/cuda_nvrtc/lib", "nvidia/cu13/lib", "nvidia/cu12/lib")));
        return List.copyOf(folders);
    }

    private static final class Library {
        static final NativeLibrary NVRTC = NativeLibrary.load("libnvrtc", PATH_PROPERTY, SONAMES, folders());
    }

    private static final class Binding {
        static final String FAILURE = Library.NVRTC.bind(MethodHandles.lookup(), Handles.class);
    }

    private static final class Handles {
        static final MethodHandle nvrtcVersion = bind("nvrtcVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle nvrtcCreateProgram = bind("nvrtcCreateProgram",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle nvrtcCompileProgram = bind("nvrtcCompileProgram",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
        static final MethodHandle nvrtcGetProgramLogSize = bind("nvrtcGetProgramLogSize",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle nvrtcGetProgramLog = bind("nvrtcGetProgramLog",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle nvrtcGetPTXSize = bind("nvrtcGetPTXSize", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle nvrtcGetPTX = bind("nvrtcGetPTX", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle nvrtcDestroyProgram = bind("nvrtcDestroyProgram", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle nvrtcGetErrorString = bind("nvrtcGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));

        private static MethodHandle bind(String symbol, FunctionDescriptor descriptor) {
            return Library.NVRTC.downcall(symbol, descriptor);
        }
    }

    /**
     * Says whether libnvrtc was loaded and has every function bound here. Loads it on first call.
     *
     * @return true when the functions of this class can be called
     */
    public static boolean isLoaded() {
        return Binding.FAILURE == null;
    }

    /**
     * Why libnvrtc cannot be used: what was looked for, where, and how to fix it.
     *
     * @return the diagnosis, or null when {@link #isLoaded()}
     */
    public static String loadFailure() {
        return Binding.FAILURE;
    }

    /**
     * Where libnvrtc was loaded from.
     *
     * @return a file path or a soname, or null when not loaded
     */
    public static String source() {
        return isLoaded() ? Library.NVRTC.source() : null;
    }

    private static void require() {
        if (Binding.FAILURE != null) {
            throw new NativeUnavailableException(Binding.FAILURE);
        }
    }

    /**
     * {@code nvrtcResult nvrtcVersion(int* major, int* minor)}.
     *
     * @param major an {@code int} out-parameter
     * @param minor an {@code int} out-parameter
     * @return the {@code nvrtcResult}
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static int nvrtcVersion(MemorySegment major, MemorySegment minor) {
        require();
        try {
            return (int) Handles.nvrtcVersion.invokeExact(major, minor);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code nvrtcResult nvrtcCreateProgram(nvrtcProgram* prog, const char* src, const char* name,
     * int numHeaders, const char* const* headers, const char* const* includeNames)}.
     *
     * @param prog         an {@code nvrtcProgram} out-parameter
     * @param src          the NUL-terminated CUDA C++ source
     * @param name         the NUL-terminated program name; NULL or empty for {@code default_program}
     * @param numHeaders   the number of headers, 0 or more
     * @param headers      {@code numHeaders} pointers to NUL-terminated header sources; NULL when 0
     * @param includeNames {@code numHeaders} pointers to the names they are included by; NULL when 0
     * @return the {@code nvrtcResult}
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static int nvrtcCreateProgram(MemorySegment prog, MemorySegment src, MemorySegment name, int numHeaders,
                                         MemorySegment headers, MemorySegment includeNames) {
        require();
        try {
            return (int) Handles.nvrtcCreateProgram.invokeExact(prog, src, name, numHeaders, headers, includeNames);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions,
     * const char* const* options)}: blocks until compiled.
     *
     * @param prog       the program
     * @param numOptions the number of options, 0 or more
     * @param options    {@code numOptions} pointers to NUL-terminated options; NULL when 0
     * @return the {@code nvrtcResult}; {@link #NVRTC_ERROR_COMPILATION} when the source has errors
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static int nvrtcCompileProgram(MemorySegment prog, int numOptions, MemorySegment options) {
        require();
        try {
            return (int) Handles.nvrtcCompileProgram.invokeExact(prog, numOptions, options);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t* logSizeRet)}: the size of
     * the last compilation's log, including its trailing NUL.
     *
     * @param prog       the program
     * @param logSizeRet a {@code size_t} out-parameter, bytes
     * @return the {@code nvrtcResult}
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static int nvrtcGetProgramLogSize(MemorySegment prog, MemorySegment logSizeRet) {
        require();
        try {
            return (int) Handles.nvrtcGetProgramLogSize.invokeExact(prog, logSizeRet);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char* log)}.
     *
     * @param prog the program
     * @param log  a buffer of the size {@link #nvrtcGetProgramLogSize} gave; receives the NUL-terminated log
     * @return the {@code nvrtcResult}
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static int nvrtcGetProgramLog(MemorySegment prog, MemorySegment log) {
        require();
        try {
            return (int) Handles.nvrtcGetProgramLog.invokeExact(prog, log);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t* ptxSizeRet)}: the size of the
     * compiled PTX, including its trailing NUL.
     *
     * @param prog       the compiled program
     * @param ptxSizeRet a {@code size_t} out-parameter, bytes
     * @return the {@code nvrtcResult}
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static int nvrtcGetPTXSize(MemorySegment prog, MemorySegment ptxSizeRet) {
        require();
        try {
            return (int) Handles.nvrtcGetPTXSize.invokeExact(prog, ptxSizeRet);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char* ptx)}.
     *
     * @param prog the compiled program
     * @param ptx  a buffer of the size {@link #nvrtcGetPTXSize} gave; receives the NUL-terminated PTX
     * @return the {@code nvrtcResult}
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static int nvrtcGetPTX(MemorySegment prog, MemorySegment ptx) {
        require();
        try {
            return (int) Handles.nvrtcGetPTX.invokeExact(prog, ptx);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code nvrtcResult nvrtcDestroyProgram(nvrtcProgram* prog)}: frees the program and sets
     * {@code *prog} to NULL.
     *
     * @param prog a pointer to the {@code nvrtcProgram}
     * @return the {@code nvrtcResult}
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static int nvrtcDestroyProgram(MemorySegment prog) {
        require();
        try {
            return (int) Handles.nvrtcDestroyProgram.invokeExact(prog);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code const char* nvrtcGetErrorString(nvrtcResult result)}: the enumerator's name, e.g.
     * {@code NVRTC_ERROR_COMPILATION}.
     *
     * @param result the {@code nvrtcResult}
     * @return a zero-length segment at the static C string (reinterpret it to read it)
     * @throws NativeUnavailableException when libnvrtc cannot be loaded
     */
    public static MemorySegment nvrtcGetErrorString(int result) {
        require();
        try {
            return (MemorySegment) Handles.nvrtcGetErrorString.invokeExact(result);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }
}
