package dev.kiln.nccl;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.kiln.cuda.NativeLibrary;
import dev.kiln.cuda.NativeUnavailableException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.util.ArrayList;
import java.util.List;

/**
 * Raw FFM bindings to libnccl 2.14 or later (every symbol is linked at load, and
 * {@code ncclCommInitRankConfig} and {@code ncclCommFinalize} first appeared in 2.14), in the
 * jextract layout: one static method per C function, named after it ({@code ncclResult_t} as
 * {@code int}, {@code ncclComm_t}, {@code cudaStream_t} and device pointers as
 * {@link MemorySegment}, {@code size_t} as {@code long}, enums as {@code int}).
 *
 * <p>The library is looked up on first use of a function: {@link #PATH_PROPERTY}, then
 * {@code libnccl.so.2} through the dynamic linker, then {@link #folders()} (which include the lib
 * folder of the Python {@code nvidia-nccl-cu12}/{@code -cu13} package). Loading this class never
 * fails; when the library cannot be loaded every function throws
 * {@link NativeUnavailableException} with the diagnosis. Use {@link Nccl} for checked calls.
 * Thread-safety is NCCL's: a communicator must not be used by two threads at once.
 */
public final class NcclLibrary {
    /** The system property naming libnccl (the file, or the folder holding it). */
    public static final String PATH_PROPERTY = "kiln.nccl.path";
    /** The file names tried. */
    public static final List<String> SONAMES = List.of("libnccl.so.2");

    /** {@code ncclSuccess}. */
    public static final int ncclSuccess = 0;
    /** {@code ncclInProgress}: a non-blocking communicator is still working (NCCL 2.14 and later). */
    public static final int ncclInProgress = 7;
    /** {@code NCCL_API_MAGIC}: the {@code magic} every {@code ncclConfig_t} must carry. */
    public static final int NCCL_API_MAGIC = 0xcafebeef;
    /** {@code NCCL_CONFIG_UNDEF_INT} ({@code INT_MIN}): "not set, use NCCL's default" for an int config field. */
    public static final int NCCL_CONFIG_UNDEF_INT = Integer.MIN_VALUE;
    /** {@code NCCL_VERSION(2, 17, 0)}: the {@code version} to put in an {@link #ncclConfig_t} of this layout. */
    public static final int NCCL_CONFIG_VERSION_2_17 = 21700;

    /** {@code ncclUniqueId}: 128 opaque bytes ({@code NCCL_UNIQUE_ID_BYTES}), passed by value. */
    public static final StructLayout ncclUniqueId = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(128, JAVA_BYTE).withName("internal")).withName("ncclUniqueId");

    /**
     * {@code ncclConfig_t} as NCCL 2.17 declared it ({@code struct ncclConfig_v21700}, 40 bytes):
     * {@code size_t size; unsigned int magic; unsigned int version; int blocking;
     * int cgaClusterSize; int minCTAs; int maxCTAs; const char* netName}. Later releases append
     * fields and keep these offsets; NCCL reads only {@code size} bytes of the caller's struct
     * (see {@link #ncclCommInitRankConfig}).
     */
    public static final StructLayout ncclConfig_t = MemoryLayout.structLayout(
            JAVA_LONG.withName("size"),
            JAVA_INT.withName("magic"),
            JAVA_INT.withName("version"),
            JAVA_INT.withName("blocking"),
            JAVA_INT.withName("cgaClusterSize"),
            JAVA_INT.withName("minCTAs"),
            JAVA_INT.withName("maxCTAs"),
            ADDRESS.withName("netName")).withName("ncclConfig_v21700");

    private NcclLibrary() {
    }

    /**
     * The folders tried after the dynamic linker, as patterns (see {@link NativeLibrary#expand}):
     * the CUDA and system library folders, then {@code nvidia/nccl/lib} under the site-packages
     * of the active virtualenv or conda environment and of the usual Python installs.
     *
     * @return the folder patterns, in order
     */
    public static List<String> folders() {
        List<String> folders = new ArrayList<>(List.of("/usr/local/cuda/lib64", "/usr/local/cuda-13*/lib64",
                "/usr/local/cuda-12*/lib64", "/usr/lib/x86_64-linux-gnu"));
        folders.addAll(NativeLibrary.pythonPackageFolders(List.of("nvidia/nccl/lib")));
        return List.copyOf(folders);
    }

    private static final class Library {
        static final NativeLibrary NCCL = NativeLibrary.load("libnccl", PATH_PROPERTY, SONAMES, folders());
    }

    private static final class Binding {
        static final String FAILURE = Library.NCCL.bind(MethodHandles.lookup(), Handles.class);
    }

    private static final class Handles {
        static final MethodHandle ncclGetVersion = bind("ncclGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle ncclGetUniqueId = bind("ncclGetUniqueId", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle ncclCommInitRank = bind("ncclCommInitRank", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ncclUniqueId, JAVA_INT));
        static final MethodHandle ncclCommInitRankConfig = bind("ncclCommInitRankConfig",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ncclUniqueId, JAVA_INT, ADDRESS));
        static final MethodHandle ncclCommFinalize = bind("ncclCommFinalize", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle ncclCommDestroy = bind("ncclCommDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle ncclCommAbort = bind("ncclCommAbort", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        static final MethodHandle ncclCommGetAsyncError = bind("ncclCommGetAsyncError", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle ncclSend = bind("ncclSend", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle ncclRecv = bind("ncclRecv", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle ncclAllReduce = bind("ncclAllReduce", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle ncclAllGather = bind("ncclAllGather",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle ncclReduceScatter = bind("ncclReduceScatter",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        static final MethodHandle ncclGroupStart = bind("ncclGroupStart", FunctionDescriptor.of(JAVA_INT));
        static final MethodHandle ncclGroupEnd = bind("ncclGroupEnd", FunctionDescriptor.of(JAVA_INT));
        static final MethodHandle ncclGetErrorString = bind("ncclGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        static final MethodHandle ncclGetLastError = bind("ncclGetLastError", FunctionDescriptor.of(ADDRESS, ADDRESS));

        private static MethodHandle bind(String symbol, FunctionDescriptor descriptor) {
            return Library.NCCL.downcall(symbol, descriptor);
        }
    }

    /**
     * Says whether libnccl was loaded and has every function bound here. Loads it on first call.
     *
     * @return true when the functions of this class can be called
     */
    public static boolean isLoaded() {
        return Binding.FAILURE == null;
    }

    /**
     * Why libnccl cannot be used: what was looked for, where, and how to fix it.
     *
     * @return the diagnosis, or null when {@link #isLoaded()}
     */
    public static String loadFailure() {
        return Binding.FAILURE;
    }

    /**
     * Where libnccl was loaded from.
     *
     * @return a file path or a soname, or null when not loaded
     */
    public static String source() {
        return isLoaded() ? Library.NCCL.source() : null;
    }

    private static void require() {
        if (Binding.FAILURE != null) {
            throw new NativeUnavailableException(Binding.FAILURE);
        }
    }

    /**
     * {@code ncclResult_t ncclGetVersion(int* version)}.
     *
     * @param version an {@code int} out-parameter: 10000 * major + 100 * minor + patch
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclGetVersion(MemorySegment version) {
        require();
        try {
            return (int) Handles.ncclGetVersion.invokeExact(version);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId)}: made by one rank, sent to all.
     *
     * @param uniqueId an {@link #ncclUniqueId} out-parameter
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclGetUniqueId(MemorySegment uniqueId) {
        require();
        try {
            return (int) Handles.ncclGetUniqueId.invokeExact(uniqueId);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank)}: blocks until every rank has joined; uses the calling thread's current CUDA device.
     *
     * @param comm an {@code ncclComm_t} out-parameter
     * @param nranks the number of ranks
     * @param commId the {@link #ncclUniqueId} (128 bytes), passed by value
     * @param rank this rank, 0 to nranks - 1
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclCommInitRank(MemorySegment comm, int nranks, MemorySegment commId, int rank) {
        require();
        try {
            return (int) Handles.ncclCommInitRank.invokeExact(comm, nranks, commId, rank);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId commId,
     * int rank, ncclConfig_t* config)} (NCCL 2.14 and later); uses the calling thread's current CUDA
     * device. With {@code config->blocking == 0} it returns at once, usually {@link #ncclInProgress},
     * with {@code *comm} already set; {@link #ncclCommGetAsyncError} then reports
     * {@link #ncclInProgress} until initialisation ends.
     *
     * <p>NCCL copies {@code min(config->size, sizeof(its own ncclConfig_t))} bytes over its
     * {@code NCCL_CONFIG_INITIALIZER} defaults, checks {@code magic}, and resets every field newer
     * than {@code config->version} to its default ({@code parseCommConfig} in {@code src/init.cc}),
     * so an older, smaller struct such as {@link #ncclConfig_t} is accepted by later releases.
     *
     * @param comm   an {@code ncclComm_t} out-parameter
     * @param nranks the number of ranks
     * @param commId the {@link #ncclUniqueId} (128 bytes), passed by value
     * @param rank   this rank, 0 to nranks - 1
     * @param config an {@link #ncclConfig_t}, read during the call only; NULL for the defaults
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclCommInitRankConfig(MemorySegment comm, int nranks, MemorySegment commId, int rank,
                                             MemorySegment config) {
        require();
        try {
            return (int) Handles.ncclCommInitRankConfig.invokeExact(comm, nranks, commId, rank, config);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclCommFinalize(ncclComm_t comm)} (NCCL 2.14 and later): flushes the
     * communicator's work; a non-blocking communicator then reports {@link #ncclInProgress} until it
     * is quiescent, after which {@link #ncclCommDestroy} frees it without blocking.
     *
     * @param comm the communicator
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclCommFinalize(MemorySegment comm) {
        require();
        try {
            return (int) Handles.ncclCommFinalize.invokeExact(comm);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclCommDestroy(ncclComm_t comm)}: waits for pending work, then frees.
     *
     * @param comm the communicator
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclCommDestroy(MemorySegment comm) {
        require();
        try {
            return (int) Handles.ncclCommDestroy.invokeExact(comm);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclCommAbort(ncclComm_t comm)}: stops pending work and frees.
     *
     * @param comm the communicator
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclCommAbort(MemorySegment comm) {
        require();
        try {
            return (int) Handles.ncclCommAbort.invokeExact(comm);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* asyncError)}.
     *
     * @param comm the communicator
     * @param asyncError an {@code ncclResult_t} out-parameter
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclCommGetAsyncError(MemorySegment comm, MemorySegment asyncError) {
        require();
        try {
            return (int) Handles.ncclCommGetAsyncError.invokeExact(comm, asyncError);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm, cudaStream_t stream)}.
     *
     * @param sendbuff device memory to send
     * @param count elements
     * @param datatype the {@code ncclDataType_t} value
     * @param peer the receiving rank
     * @param comm the communicator
     * @param stream the CUDA stream
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclSend(MemorySegment sendbuff, long count, int datatype, int peer, MemorySegment comm, MemorySegment stream) {
        require();
        try {
            return (int) Handles.ncclSend.invokeExact(sendbuff, count, datatype, peer, comm, stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm, cudaStream_t stream)}.
     *
     * @param recvbuff device memory to receive into
     * @param count elements
     * @param datatype the {@code ncclDataType_t} value
     * @param peer the sending rank
     * @param comm the communicator
     * @param stream the CUDA stream
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclRecv(MemorySegment recvbuff, long count, int datatype, int peer, MemorySegment comm, MemorySegment stream) {
        require();
        try {
            return (int) Handles.ncclRecv.invokeExact(recvbuff, count, datatype, peer, comm, stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)}.
     *
     * @param sendbuff device memory to reduce
     * @param recvbuff device memory for the result (may equal sendbuff)
     * @param count elements
     * @param datatype the {@code ncclDataType_t} value
     * @param op the {@code ncclRedOp_t} value
     * @param comm the communicator
     * @param stream the CUDA stream
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclAllReduce(MemorySegment sendbuff, MemorySegment recvbuff, long count, int datatype, int op, MemorySegment comm, MemorySegment stream) {
        require();
        try {
            return (int) Handles.ncclAllReduce.invokeExact(sendbuff, recvbuff, count, datatype, op, comm, stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream)}:
     * rank i's {@code sendcount} elements land at {@code recvbuff + i * sendcount} on every rank.
     *
     * @param sendbuff device memory, {@code sendcount} elements
     * @param recvbuff device memory, {@code nranks * sendcount} elements
     * @param sendcount elements each rank sends
     * @param datatype the {@code ncclDataType_t} value
     * @param comm the communicator
     * @param stream the CUDA stream
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclAllGather(MemorySegment sendbuff, MemorySegment recvbuff, long sendcount, int datatype, MemorySegment comm, MemorySegment stream) {
        require();
        try {
            return (int) Handles.ncclAllGather.invokeExact(sendbuff, recvbuff, sendcount, datatype, comm, stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)}:
     * rank i receives block i ({@code recvcount} elements) of the reduction.
     *
     * @param sendbuff device memory, {@code nranks * recvcount} elements
     * @param recvbuff device memory, {@code recvcount} elements
     * @param recvcount elements each rank receives
     * @param datatype the {@code ncclDataType_t} value
     * @param op the {@code ncclRedOp_t} value
     * @param comm the communicator
     * @param stream the CUDA stream
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclReduceScatter(MemorySegment sendbuff, MemorySegment recvbuff, long recvcount, int datatype, int op, MemorySegment comm, MemorySegment stream) {
        require();
        try {
            return (int) Handles.ncclReduceScatter.invokeExact(sendbuff, recvbuff, recvcount, datatype, op, comm, stream);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclGroupStart(void)}: starts a group of calls that NCCL issues together.
     *
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclGroupStart() {
        require();
        try {
            return (int) Handles.ncclGroupStart.invokeExact();
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code ncclResult_t ncclGroupEnd(void)}: issues the calls since {@code ncclGroupStart}.
     *
     * @return the {@code ncclResult_t}
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static int ncclGroupEnd() {
        require();
        try {
            return (int) Handles.ncclGroupEnd.invokeExact();
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code const char* ncclGetErrorString(ncclResult_t result)}.
     *
     * @param result the {@code ncclResult_t}
     * @return a zero-length segment at the static C string (reinterpret it to read it)
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static MemorySegment ncclGetErrorString(int result) {
        require();
        try {
            return (MemorySegment) Handles.ncclGetErrorString.invokeExact(result);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }

    /**
     * {@code const char* ncclGetLastError(ncclComm_t comm)}: a human-readable message about the last
     * error NCCL reported (the text of its last {@code WARN}). NCCL's {@code src/init.cc} ignores
     * {@code comm} and returns the process-wide message.
     *
     * @param comm the communicator, or NULL
     * @return a zero-length segment at a NUL-terminated C string owned by NCCL (reinterpret it to
     *         read it; it may change at the next NCCL call)
     * @throws dev.kiln.cuda.NativeUnavailableException when libnccl cannot be loaded
     */
    public static MemorySegment ncclGetLastError(MemorySegment comm) {
        require();
        try {
            return (MemorySegment) Handles.ncclGetLastError.invokeExact(comm);
        } catch (Throwable t) {
            throw NativeLibrary.rethrow(t);
        }
    }
}
