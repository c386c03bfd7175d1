package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.util.List;

/**
 * Raw FFM bindings to libcudart (CUDA runtime API 12 and 13), in the jextract layout: one static
 * method per C function, named after it, taking and returning exactly what the C function does
 * ({@code cudaError_t} as {@code int}, pointers and opaque handles as {@link MemorySegment},
 * {@code size_t} as {@code long}). Out-parameters are segments the caller allocates.
 *
 * <p>The library is looked up on first use of a function (see {@link #PATH_PROPERTY} and
 * {@link NativeLibrary}); loading this class never fails. When the library cannot be loaded, every
 * function throws {@link NativeUnavailableException} with the diagnosis. These bindings need only
 * the library, not a device: use {@link Cuda} for checked calls that also require a GPU.
 *
 * <p>Every function is safe to call from any thread, as the CUDA runtime is.
 */
public final class CudaRuntime {
    /** The system property naming libcudart (the file, or the folder holding it). */
    public static final String PATH_PROPERTY = "kiln.cudart.path";
    /** The file names tried, preferred first. */
    public static final List<String> SONAMES = List.of("libcudart.so.13", "libcudart.so.12");
    /** The folders tried after the dynamic linker (patterns; see {@link NativeLibrary#expand}). */
    public static final List<String> FOLDERS = List.of("/usr/local/cuda/lib64", "/usr/local/cuda-13*/lib64",
            "/usr/local/cuda-13*/lib",
            "/usr/local/cuda-12*/lib64", "/usr/lib/x86_64-linux-gnu");

    /** {@code cudaSuccess}. */
    public static final int cudaSuccess = 0;
    /** {@code cudaErrorInsufficientDriver}: the driver is older than the runtime needs. */
    public static final int cudaErrorInsufficientDriver = 35;
    /** {@code cudaErrorNoDevice}. */
    public static final int cudaErrorNoDevice = 100;
    /** {@code cudaErrorNotReady}: queried work has not completed yet (not an error). */
    public static final int cudaErrorNotReady = 600;
    /** {@code cudaStreamNonBlocking}: the stream does not synchronize with the legacy default stream. */
    public static final int cudaStreamNonBlocking = 0x01;
    /** {@code cudaEventDefault}. */
    public static final int cudaEventDefault = 0x00;
    /** {@code cudaEventDisableTiming}: a cheaper event that cannot be used for timing. */
    public static final int cudaEventDisableTiming = 0x02;
    /** {@code cudaEventInterprocess}: an event that can be shared by IPC (needs DisableTiming too). */
    public static final int cudaEventInterprocess = 0x04;
    /** {@code cudaHostRegisterDefault}. */
    public static final int cudaHostRegisterDefault = 0x00;
    /** {@code cudaHostRegisterPortable}: pinned for every CUDA context, not just the current one. */
    public static final int cudaHostRegisterPortable = 0x01;
    /** {@code cudaIpcMemLazyEnablePeerAccess}: the flag {@code cudaIpcOpenMemHandle} is normally given. */
    public static final int cudaIpcMemLazyEnablePeerAccess = 0x01;

    /** {@code cudaIpcMemHandle_t}: 64 opaque bytes, passed by value. */
    public static final StructLayout cudaIpcMemHandle_t = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(64, JAVA_BYTE).withName("reserved")).withName("cudaIpcMemHandle_st");
    /** {@code cudaIpcEventHandle_t}: 64 opaque bytes, passed by value. */
    public static final StructLayout cudaIpcEventHandle_t = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(64, JAVA_BYTE).withName("reserved")).withName("cudaIpcEventHandle_st");

    private CudaRuntime() {
    }

    private static final class Library {
        static final NativeLibrary CUDART = NativeLibrary.load("libcudart", PATH_PROPERTY, SONAMES, FOLDERS);
    }

    private static final class Binding {
        static final String FAILURE = Library.CUDART.bind(MethodHandles.lookup(), Handles.class);
    }

    private static final class Handles {
        static final MethodHandle cudaGetDeviceCount = bind("cudaGetDeviceCount", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaDeviceGetAttribute = bind("cudaDeviceGetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        static final MethodHandle cudaSetDevice = bind("cudaSetDevice", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
        static final MethodHandle cudaGetDevice = bind("cudaGetDevice", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaDeviceCanAccessPeer = bind("cudaDeviceCanAccessPeer",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        static final MethodHandle cudaDriverGetVersion = bind("cudaDriverGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaRuntimeGetVersion = bind("cudaRuntimeGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaMalloc = bind("cudaMalloc", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        static final MethodHandle cudaFree = bind("cudaFree", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaMallocHost = bind("cudaMallocHost", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        static final MethodHandle cudaFreeHost = bind("cudaFreeHost", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaHostRegister = bind("cudaHostRegister",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
        static final MethodHandle cudaHostUnregister = bind("cudaHostUnregister", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaMemcpy = bind("cudaMemcpy",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT));
        static final MethodHandle cudaMemcpyAsync = bind("cudaMemcpyAsync",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS));
        static final MethodHandle cudaMemset = bind("cudaMemset", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
        static final MethodHandle cudaStreamCreateWithFlags = bind("cudaStreamCreateWithFlags",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        static final MethodHandle cudaStreamDestroy = bind("cudaStreamDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaStreamSynchronize = bind("cudaStreamSynchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaStreamQuery = bind("cudaStreamQuery", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaStreamWaitEvent = bind("cudaStreamWaitEvent",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        static final MethodHandle cudaEventCreateWithFlags = bind("cudaEventCreateWithFlags",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        static final MethodHandle cudaEventRecord = bind("cudaEventRecord", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle cudaEventSynchronize = bind("cudaEventSynchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaEventQuery = bind("cudaEventQuery", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaEventElapsedTime = bind("cudaEventElapsedTime",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        static final MethodHandle cudaEventDestroy = bind("cudaEventDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaIpcGetMemHandle = bind("cudaIpcGetMemHandle",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle cudaIpcOpenMemHandle = bind("cudaIpcOpenMemHandle",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, cudaIpcMemHandle_t, JAVA_INT));
        static final MethodHandle cudaIpcCloseMemHandle = bind("cudaIpcCloseMemHandle", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle cudaIpcGetEventHandle = bind("cudaIpcGetEventHandle",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle cudaIpcOpenEventHandle = bind("cudaIpcOpenEventHandle",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, cudaIpcEventHandle_t));
        static final MethodHandle cudaMemGetInfo = bind("cudaMemGetInfo", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle cudaGetErrorName = bind("cudaGetErrorName", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        static final MethodHandle cudaGetErrorString = bind("cudaGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));

        private static MethodHandle bind(String symbol, FunctionDescriptor descriptor) {
            return Library.CUDART.downcall(symbol, descriptor);
        }
    }

    /**
     * Says whether libcudart was loaded and has every function bound here. Loads it on first call.
     *
     * @return true when the functions of this class can be called
     */
    public static boolean isLoaded() {
        return Binding.FAILURE == null;
    }

    /**
     * Why libcudart cannot be used: what was looked for, where, and how to fix it.
     *
     * @return the diagnosis, or null when {@link #isLoaded()}
     */
    public static String loadFailure() {
        return Binding.FAILURE;
    }

    /**
     * Where libcudart was loaded from.
     *
     * @return a file path or a soname, or null when not loaded
     */
    public static String source() {
        return isLoaded() ? Library.CUDART.source() : null;
    }

    private static void require() {
        if (Binding.FAILURE != null) {
            throw new NativeUnavailableException(Binding.FAILURE);
        }
    }

    /**
     * {@code cudaError_t cudaGetDeviceCount(int* count)}.
     *
     * @param count an {@code int} out-parameter
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaGetDeviceCount(MemorySegment count) {
        require();
        try {
            return (int) Handles.cudaGetDeviceCount.invokeExact(count);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device)}.
     *
     * @param value  an {@code int} out-parameter
     * @param attr   the {@code cudaDeviceAttr} value
     * @param device the device ordinal
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaDeviceGetAttribute(MemorySegment value, int attr, int device) {
        require();
        try {
            return (int) Handles.cudaDeviceGetAttribute.invokeExact(value, attr, device);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaSetDevice(int device)}: makes the device current for the calling thread.
     *
     * @param device the device ordinal
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaSetDevice(int device) {
        require();
        try {
            return (int) Handles.cudaSetDevice.invokeExact(device);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaGetDevice(int* device)}.
     *
     * @param device an {@code int} out-parameter
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaGetDevice(MemorySegment device) {
        require();
        try {
            return (int) Handles.cudaGetDevice.invokeExact(device);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaDeviceCanAccessPeer(int* canAccessPeer, int device, int peerDevice)}:
     * 1 when {@code device} can map memory of {@code peerDevice} directly, else 0.
     *
     * @param canAccessPeer an {@code int} out-parameter
     * @param device        the device that would access the memory
     * @param peerDevice    the device that holds the memory
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaDeviceCanAccessPeer(MemorySegment canAccessPeer, int device, int peerDevice) {
        require();
        try {
            return (int) Handles.cudaDeviceCanAccessPeer.invokeExact(canAccessPeer, device, peerDevice);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaDriverGetVersion(int* driverVersion)}: 1000 * major + 10 * minor, or
     * 0 when no driver is installed.
     *
     * @param driverVersion an {@code int} out-parameter
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaDriverGetVersion(MemorySegment driverVersion) {
        require();
        try {
            return (int) Handles.cudaDriverGetVersion.invokeExact(driverVersion);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaRuntimeGetVersion(int* runtimeVersion)}: 1000 * major + 10 * minor.
     *
     * @param runtimeVersion an {@code int} out-parameter
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaRuntimeGetVersion(MemorySegment runtimeVersion) {
        require();
        try {
            return (int) Handles.cudaRuntimeGetVersion.invokeExact(runtimeVersion);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaMalloc(void** devPtr, size_t size)}.
     *
     * @param devPtr a pointer out-parameter
     * @param size   bytes
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaMalloc(MemorySegment devPtr, long size) {
        require();
        try {
            return (int) Handles.cudaMalloc.invokeExact(devPtr, size);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaFree(void* devPtr)}.
     *
     * @param devPtr device memory from {@code cudaMalloc}
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaFree(MemorySegment devPtr) {
        require();
        try {
            return (int) Handles.cudaFree.invokeExact(devPtr);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaMallocHost(void** ptr, size_t size)}: page-locked host memory.
     *
     * @param ptr  a pointer out-parameter
     * @param size bytes
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaMallocHost(MemorySegment ptr, long size) {
        require();
        try {
            return (int) Handles.cudaMallocHost.invokeExact(ptr, size);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaFreeHost(void* ptr)}.
     *
     * @param ptr host memory from {@code cudaMallocHost}
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaFreeHost(MemorySegment ptr) {
        require();
        try {
            return (int) Handles.cudaFreeHost.invokeExact(ptr);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaHostRegister(void* ptr, size_t size, unsigned int flags)}: pins
     * existing host memory.
     *
     * @param ptr   the host memory
     * @param size  bytes
     * @param flags {@code cudaHostRegister*} flags
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaHostRegister(MemorySegment ptr, long size, int flags) {
        require();
        try {
            return (int) Handles.cudaHostRegister.invokeExact(ptr, size, flags);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaHostUnregister(void* ptr)}.
     *
     * @param ptr host memory given to {@code cudaHostRegister}
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaHostUnregister(MemorySegment ptr) {
        require();
        try {
            return (int) Handles.cudaHostUnregister.invokeExact(ptr);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind)}.
     *
     * @param dst   destination
     * @param src   source
     * @param count bytes
     * @param kind  the {@code cudaMemcpyKind} value (see {@link MemcpyKind})
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaMemcpy(MemorySegment dst, MemorySegment src, long count, int kind) {
        require();
        try {
            return (int) Handles.cudaMemcpy.invokeExact(dst, src, count, kind);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count,
     * cudaMemcpyKind kind, cudaStream_t stream)}.
     *
     * @param dst    destination
     * @param src    source
     * @param count  bytes
     * @param kind   the {@code cudaMemcpyKind} value (see {@link MemcpyKind})
     * @param stream the stream; {@link MemorySegment#NULL} for the default stream
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaMemcpyAsync(MemorySegment dst, MemorySegment src, long count, int kind, MemorySegment stream) {
        require();
        try {
            return (int) Handles.cudaMemcpyAsync.invokeExact(dst, src, count, kind, stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaMemset(void* devPtr, int value, size_t count)}.
     *
     * @param devPtr device memory
     * @param value  the byte value (low 8 bits)
     * @param count  bytes
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaMemset(MemorySegment devPtr, int value, long count) {
        require();
        try {
            return (int) Handles.cudaMemset.invokeExact(devPtr, value, count);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags)}.
     *
     * @param pStream a pointer out-parameter
     * @param flags   0 or {@link #cudaStreamNonBlocking}
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaStreamCreateWithFlags(MemorySegment pStream, int flags) {
        require();
        try {
            return (int) Handles.cudaStreamCreateWithFlags.invokeExact(pStream, flags);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaStreamDestroy(cudaStream_t stream)}.
     *
     * @param stream the stream
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaStreamDestroy(MemorySegment stream) {
        require();
        try {
            return (int) Handles.cudaStreamDestroy.invokeExact(stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaStreamSynchronize(cudaStream_t stream)}: blocks until the stream is idle.
     *
     * @param stream the stream
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaStreamSynchronize(MemorySegment stream) {
        require();
        try {
            return (int) Handles.cudaStreamSynchronize.invokeExact(stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaStreamQuery(cudaStream_t stream)}: {@link #cudaSuccess} when all work
     * on the stream has completed, {@link #cudaErrorNotReady} when not; does not block.
     *
     * @param stream the stream; {@link MemorySegment#NULL} for the default stream
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaStreamQuery(MemorySegment stream) {
        require();
        try {
            return (int) Handles.cudaStreamQuery.invokeExact(stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags)}.
     *
     * @param stream the stream that waits
     * @param event  the event waited for
     * @param flags  0
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaStreamWaitEvent(MemorySegment stream, MemorySegment event, int flags) {
        require();
        try {
            return (int) Handles.cudaStreamWaitEvent.invokeExact(stream, event, flags);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags)}.
     *
     * @param event a pointer out-parameter
     * @param flags {@code cudaEvent*} flags
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaEventCreateWithFlags(MemorySegment event, int flags) {
        require();
        try {
            return (int) Handles.cudaEventCreateWithFlags.invokeExact(event, flags);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)}.
     *
     * @param event  the event
     * @param stream the stream; {@link MemorySegment#NULL} for the default stream
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaEventRecord(MemorySegment event, MemorySegment stream) {
        require();
        try {
            return (int) Handles.cudaEventRecord.invokeExact(event, stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaEventSynchronize(cudaEvent_t event)}.
     *
     * @param event the event
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaEventSynchronize(MemorySegment event) {
        require();
        try {
            return (int) Handles.cudaEventSynchronize.invokeExact(event);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaEventQuery(cudaEvent_t event)}: {@link #cudaSuccess} when the work the
     * event captured has completed, {@link #cudaErrorNotReady} when not; does not block.
     *
     * @param event the event
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaEventQuery(MemorySegment event) {
        require();
        try {
            return (int) Handles.cudaEventQuery.invokeExact(event);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end)}.
     *
     * @param ms    a {@code float} out-parameter, milliseconds
     * @param start the earlier event
     * @param end   the later event
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaEventElapsedTime(MemorySegment ms, MemorySegment start, MemorySegment end) {
        require();
        try {
            return (int) Handles.cudaEventElapsedTime.invokeExact(ms, start, end);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaEventDestroy(cudaEvent_t event)}.
     *
     * @param event the event
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaEventDestroy(MemorySegment event) {
        require();
        try {
            return (int) Handles.cudaEventDestroy.invokeExact(event);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaIpcGetMemHandle(cudaIpcMemHandle_t* handle, void* devPtr)}.
     *
     * @param handle a {@link #cudaIpcMemHandle_t} out-parameter
     * @param devPtr device memory from {@code cudaMalloc}
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaIpcGetMemHandle(MemorySegment handle, MemorySegment devPtr) {
        require();
        try {
            return (int) Handles.cudaIpcGetMemHandle.invokeExact(handle, devPtr);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaIpcOpenMemHandle(void** devPtr, cudaIpcMemHandle_t handle,
     * unsigned int flags)}; the handle is passed by value. CUDA refuses a handle in the process
     * that exported it.
     *
     * @param devPtr a pointer out-parameter
     * @param handle a {@link #cudaIpcMemHandle_t} (64 bytes)
     * @param flags  {@link #cudaIpcMemLazyEnablePeerAccess}
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaIpcOpenMemHandle(MemorySegment devPtr, MemorySegment handle, int flags) {
        require();
        try {
            return (int) Handles.cudaIpcOpenMemHandle.invokeExact(devPtr, handle, flags);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaIpcCloseMemHandle(void* devPtr)}.
     *
     * @param devPtr a pointer from {@code cudaIpcOpenMemHandle}
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaIpcCloseMemHandle(MemorySegment devPtr) {
        require();
        try {
            return (int) Handles.cudaIpcCloseMemHandle.invokeExact(devPtr);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaIpcGetEventHandle(cudaIpcEventHandle_t* handle, cudaEvent_t event)};
     * the event must have been created with {@link #cudaEventInterprocess} and
     * {@link #cudaEventDisableTiming}.
     *
     * @param handle a {@link #cudaIpcEventHandle_t} out-parameter
     * @param event  the event
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaIpcGetEventHandle(MemorySegment handle, MemorySegment event) {
        require();
        try {
            return (int) Handles.cudaIpcGetEventHandle.invokeExact(handle, event);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaIpcOpenEventHandle(cudaEvent_t* event, cudaIpcEventHandle_t handle)};
     * the handle is passed by value.
     *
     * @param event  a pointer out-parameter
     * @param handle a {@link #cudaIpcEventHandle_t} (64 bytes)
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaIpcOpenEventHandle(MemorySegment event, MemorySegment handle) {
        require();
        try {
            return (int) Handles.cudaIpcOpenEventHandle.invokeExact(event, handle);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code cudaError_t cudaMemGetInfo(size_t* free, size_t* total)} for the current device.
     *
     * @param free  a {@code size_t} out-parameter, bytes
     * @param total a {@code size_t} out-parameter, bytes
     * @return the {@code cudaError_t}
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static int cudaMemGetInfo(MemorySegment free, MemorySegment total) {
        require();
        try {
            return (int) Handles.cudaMemGetInfo.invokeExact(free, total);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code const char* cudaGetErrorName(cudaError_t error)}.
     *
     * @param error the error code
     * @return a zero-length segment at the static C string (reinterpret it to read it)
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static MemorySegment cudaGetErrorName(int error) {
        require();
        try {
            return (MemorySegment) Handles.cudaGetErrorName.invokeExact(error);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code const char* cudaGetErrorString(cudaError_t error)}.
     *
     * @param error the error code
     * @return a zero-length segment at the static C string (reinterpret it to read it)
     * @throws NativeUnavailableException when libcudart cannot be loaded
     */
    public static MemorySegment cudaGetErrorString(int error) {
        require();
        try {
            return (MemorySegment) Handles.cudaGetErrorString.invokeExact(error);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }
}
