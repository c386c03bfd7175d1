package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.util.List;

/**
 * Raw FFM bindings to libcuda (the CUDA driver API, {@code cuda.h}), in the jextract layout: one
 * static method per C function, named after the symbol it links ({@code CUresult} as {@code int},
 * {@code CUdevice} as {@code int}, contexts, modules, functions, streams and pointers as
 * {@link MemorySegment}, {@code size_t} as {@code long}). Where {@code cuda.h} maps a name to a
 * versioned symbol ({@code #define cuDeviceTotalMem cuDeviceTotalMem_v2}) the method carries the
 * versioned name, as jextract would. Out-parameters are segments the caller allocates.
 *
 * <p>The library is looked up on first use of a function (see {@link #PATH_PROPERTY} and
 * {@link NativeLibrary}); loading this class never fails. When the library cannot be loaded, every
 * function throws {@link NativeUnavailableException} with the diagnosis. Nothing here calls
 * {@code cuInit}: every function but {@code cuInit}, {@code cuGetErrorName} and
 * {@code cuGetErrorString} returns {@code CUDA_ERROR_NOT_INITIALIZED} until it is called. Use
 * {@link CudaDriver} for checked calls.
 *
 * <p>Every function is safe to call from any thread, as the driver is; module and launch calls act
 * on the calling thread's current context.
 */
public final class CudaDriverLibrary {
    /** The system property naming libcuda (the file, or the folder holding it). */
    public static final String PATH_PROPERTY = "kiln.cuda.driver.path";
    /** The file names tried. */
    public static final List<String> SONAMES = List.of("libcuda.so.1");
    /**
     * The folders tried after the dynamic linker: the distribution's library folders, the CUDA
     * forward-compatibility package, and WSL's driver folder.
     */
    public static final List<String> FOLDERS = List.of("/usr/lib/x86_64-linux-gnu", "/usr/lib64",
            "/usr/local/cuda/compat", "/usr/lib/wsl/lib");

    /** {@code CUDA_SUCCESS}. */
    public static final int CUDA_SUCCESS = 0;
    /** {@code CUDA_ERROR_INVALID_CONTEXT}: no context is current on the calling thread, or it is invalid. */
    public static final int CUDA_ERROR_INVALID_CONTEXT = 201;

    /** {@code CUuuid}: {@code struct CUuuid_st { char bytes[16]; }}. */
    public static final StructLayout CUuuid = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(16, JAVA_BYTE).withName("bytes")).withName("CUuuid_st");

    private CudaDriverLibrary() {
    }

    private static final class Library {
        static final NativeLibrary CUDA = NativeLibrary.load("libcuda", PATH_PROPERTY, SONAMES, FOLDERS);
    }

    private static final class Binding {
        static final String FAILURE = Library.CUDA.bind(MethodHandles.lookup(), Handles.class);
    }

    private static final class Handles {
        static final MethodHandle cuInit = bind("cuInit", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
        static final MethodHandle cuDeviceGet = bind("cuDeviceGet", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        static final MethodHandle cuDeviceGetUuid_v2 = bind("cuDeviceGetUuid_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        static final MethodHandle cuDeviceTotalMem_v2 = bind("cuDeviceTotalMem_v2",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        static final MethodHandle cuCtxGetCurrent = bind("cuCtxGetCurrent", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cuCtxSetCurrent = bind("cuCtxSetCurrent", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cuModuleLoadData = bind("cuModuleLoadData",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle cuModuleGetFunction = bind("cuModuleGetFunction",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        static final MethodHandle cuModuleUnload = bind("cuModuleUnload", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cuLaunchKernel = bind("cuLaunchKernel", FunctionDescriptor.of(JAVA_INT, ADDRESS,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        static final MethodHandle cuGetErrorName = bind("cuGetErrorName", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
        static final MethodHandle cuGetErrorString = bind("cuGetErrorString",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));

        private static MethodHandle bind(String symbol, FunctionDescriptor descriptor) {
            return Library.CUDA.downcall(symbol, descriptor);
        }
    }

    /**
     * Says whether libcuda was loaded and has every function bound here. Loads it on first call.
     *
     * @return true when the functions of this class can be called
     */
    public static boolean isLoaded() {
        return Binding.FAILURE == null;
    }

    /**
     * Why libcuda cannot be used: what was looked for, where, and how to fix it.
     *
     * @return the diagnosis, or null when {@link #isLoaded()}
     */
    public static String loadFailure() {
        return Binding.FAILURE;
    }

    /**
     * Where libcuda was loaded from.
     *
     * @return a file path or a soname, or null when not loaded
     */
    public static String source() {
        return isLoaded() ? Library.CUDA.source() : null;
    }

    private static void require() {
        if (Binding.FAILURE != null) {
            throw new NativeUnavailableException(Binding.FAILURE);
        }
    }

    /**
     * {@code CUresult cuInit(unsigned int Flags)}: initialises the driver API for the process.
     *
     * @param flags 0
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuInit(int flags) {
        require();
        try {
            return (int) Handles.cuInit.invokeExact(flags);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuDeviceGet(CUdevice* device, int ordinal)}.
     *
     * @param device  a {@code CUdevice} ({@code int}) out-parameter
     * @param ordinal the device ordinal, 0 to the device count - 1
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuDeviceGet(MemorySegment device, int ordinal) {
        require();
        try {
            return (int) Handles.cuDeviceGet.invokeExact(device, ordinal);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuDeviceGetUuid_v2(CUuuid* uuid, CUdevice dev)} (what {@code cuDeviceGetUuid}
     * names in {@code cuda.h}): the 16 UUID bytes, the MIG instance's for a MIG device.
     *
     * @param uuid a {@link #CUuuid} out-parameter (16 bytes)
     * @param dev  the {@code CUdevice} from {@link #cuDeviceGet}
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuDeviceGetUuid_v2(MemorySegment uuid, int dev) {
        require();
        try {
            return (int) Handles.cuDeviceGetUuid_v2.invokeExact(uuid, dev);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev)} (what
     * {@code cuDeviceTotalMem} names in {@code cuda.h}).
     *
     * @param bytes a {@code size_t} out-parameter, bytes
     * @param dev   the {@code CUdevice} from {@link #cuDeviceGet}
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuDeviceTotalMem_v2(MemorySegment bytes, int dev) {
        require();
        try {
            return (int) Handles.cuDeviceTotalMem_v2.invokeExact(bytes, dev);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuCtxGetCurrent(CUcontext* pctx)}: the context bound to the calling thread,
     * NULL (with {@code CUDA_SUCCESS}) when none is.
     *
     * @param pctx a pointer out-parameter
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuCtxGetCurrent(MemorySegment pctx) {
        require();
        try {
            return (int) Handles.cuCtxGetCurrent.invokeExact(pctx);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuCtxSetCurrent(CUcontext ctx)}: binds {@code ctx} to the calling thread, replacing the
     * context on top of its stack; NULL unbinds the current one (the context itself lives on).
     *
     * @param ctx the {@code CUcontext} handle, {@code MemorySegment.NULL} to unbind
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuCtxSetCurrent(MemorySegment ctx) {
        require();
        try {
            return (int) Handles.cuCtxSetCurrent.invokeExact(ctx);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuModuleLoadData(CUmodule* module, const void* image)}: loads a cubin, fatbin
     * or NUL-terminated PTX image into the current context.
     *
     * @param module a pointer out-parameter
     * @param image  the image, native memory
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuModuleLoadData(MemorySegment module, MemorySegment image) {
        require();
        try {
            return (int) Handles.cuModuleLoadData.invokeExact(module, image);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuModuleGetFunction(CUfunction* hfunc, CUmodule hmod, const char* name)};
     * {@code CUDA_ERROR_NOT_FOUND} when the module has no such function.
     *
     * @param hfunc a pointer out-parameter
     * @param hmod  the module
     * @param name  the NUL-terminated function name (the mangled name, unless declared {@code extern "C"})
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuModuleGetFunction(MemorySegment hfunc, MemorySegment hmod, MemorySegment name) {
        require();
        try {
            return (int) Handles.cuModuleGetFunction.invokeExact(hfunc, hmod, name);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuModuleUnload(CUmodule hmod)}.
     *
     * @param hmod the module
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuModuleUnload(MemorySegment hmod) {
        require();
        try {
            return (int) Handles.cuModuleUnload.invokeExact(hmod);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
     * unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
     * unsigned int sharedMemBytes, CUstream hStream, void** kernelParams, void** extra)}: enqueues
     * the kernel; does not wait for it.
     *
     * @param f              the function
     * @param gridDimX       blocks in x
     * @param gridDimY       blocks in y
     * @param gridDimZ       blocks in z
     * @param blockDimX      threads per block in x
     * @param blockDimY      threads per block in y
     * @param blockDimZ      threads per block in z
     * @param sharedMemBytes dynamic shared memory per block, bytes
     * @param hStream        the stream; {@link MemorySegment#NULL} for the default stream
     * @param kernelParams   an array of pointers, one to each argument's value, or NULL
     * @param extra          NULL, or a {@code CU_LAUNCH_PARAM_*} list (not both this and kernelParams)
     * @return the {@code CUresult}
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuLaunchKernel(MemorySegment f, int gridDimX, int gridDimY, int gridDimZ, int blockDimX,
                                     int blockDimY, int blockDimZ, int sharedMemBytes, MemorySegment hStream,
                                     MemorySegment kernelParams, MemorySegment extra) {
        require();
        try {
            return (int) Handles.cuLaunchKernel.invokeExact(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY,
                    blockDimZ, sharedMemBytes, hStream, kernelParams, extra);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuGetErrorName(CUresult error, const char** pStr)}; needs no {@code cuInit}.
     *
     * @param error the error code
     * @param pStr  a pointer out-parameter: a static C string, NULL for an unknown code
     * @return the {@code CUresult}: {@code CUDA_ERROR_INVALID_VALUE} for an unknown code
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuGetErrorName(int error, MemorySegment pStr) {
        require();
        try {
            return (int) Handles.cuGetErrorName.invokeExact(error, pStr);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code CUresult cuGetErrorString(CUresult error, const char** pStr)}; needs no {@code cuInit}.
     *
     * @param error the error code
     * @param pStr  a pointer out-parameter: a static C string, NULL for an unknown code
     * @return the {@code CUresult}: {@code CUDA_ERROR_INVALID_VALUE} for an unknown code
     * @throws NativeUnavailableException when libcuda cannot be loaded
     */
    public static int cuGetErrorString(int error, MemorySegment pStr) {
        require();
        try {
            return (int) Handles.cuGetErrorString.invokeExact(error, pStr);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }
}
