package dev.kiln.nccl;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.NativeUnavailableException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Checked Java façade over {@link NcclLibrary}: every call checks its {@code ncclResult_t} and
 * throws {@link NcclException} on failure. Communicators, streams and device buffers are plain
 * {@code long} addresses (stream 0 is the default stream).
 *
 * <p>NCCL is available when libnccl loads and {@link Cuda#isAvailable() CUDA is available}; this is
 * probed once, on first use. When it is not, every call here throws
 * {@link NativeUnavailableException} carrying {@link #unavailableReason()}. A communicator must
 * not be used by two threads at once; point-to-point calls between a pair of ranks must be issued
 * in the same order on both sides.
 */
public final class Nccl {
    /** Bytes in an {@code ncclUniqueId}. */
    public static final int UNIQUE_ID_BYTES = 128;

    private Nccl() {
    }

    private static final class Probe {
        static final String FAILURE = probe();
    }

    private static String probe() {
        String failure = NcclLibrary.loadFailure();
        if (failure != null) {
            return failure;
        }
        if (!Cuda.isAvailable()) {
            return "libnccl loaded from " + NcclLibrary.source() + " but CUDA is unavailable: " + Cuda.unavailableReason();
        }
        return null;
    }

    /**
     * Says whether NCCL can be used: libnccl loaded and CUDA available.
     *
     * @return true when the calls of this class can succeed
     */
    public static boolean isAvailable() {
        return Probe.FAILURE == null;
    }

    /**
     * Why NCCL cannot be used, with what to do about it.
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

    private static void check(int result, String call) {
        if (result != NcclLibrary.ncclSuccess) {
            throw new NcclException(call, result, errorString(result));
        }
    }

    /**
     * The description of an NCCL result code ({@code ncclGetErrorString}).
     *
     * @param result an {@code ncclResult_t} value
     * @return e.g. {@code invalid argument}
     * @throws NativeUnavailableException when libnccl cannot be loaded
     */
    @SuppressWarnings("restricted") // NCCL returns static, NUL-terminated strings
    public static String errorString(int result) {
        MemorySegment text = NcclLibrary.ncclGetErrorString(result);
        return text.equals(MemorySegment.NULL) ? "(null)" : text.reinterpret(Long.MAX_VALUE).getString(0);
    }

    /**
     * The version of the loaded libnccl.
     *
     * @return 10000 * major + 100 * minor + patch, e.g. 22703 for 2.27.3
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static int version() {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment version = arena.allocate(JAVA_INT);
            check(NcclLibrary.ncclGetVersion(version), "ncclGetVersion");
            return version.get(JAVA_INT, 0);
        }
    }

    /**
     * Makes a new communicator id; one rank calls this and sends the bytes to every other rank.
     *
     * @return the {@value #UNIQUE_ID_BYTES}-byte id
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static byte[] uniqueId() {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = arena.allocate(NcclLibrary.ncclUniqueId);
            check(NcclLibrary.ncclGetUniqueId(id), "ncclGetUniqueId");
            return id.toArray(JAVA_BYTE);
        }
    }

    /**
     * Joins a communicator on the calling thread's current CUDA device; blocks until all
     * {@code ranks} have joined.
     *
     * @param ranks    how many ranks the communicator has
     * @param uniqueId the id from {@link #uniqueId()}, the same on every rank
     * @param rank     this rank, 0 to {@code ranks - 1}
     * @return the communicator; end it with {@link #commDestroy} or {@link #commAbort}
     * @throws IllegalArgumentException   when the id is not {@value #UNIQUE_ID_BYTES} bytes
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static long commInitRank(int ranks, byte[] uniqueId, int rank) {
        require();
        if (uniqueId.length != UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("an ncclUniqueId has " + UNIQUE_ID_BYTES + " bytes, not " + uniqueId.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = arena.allocate(NcclLibrary.ncclUniqueId);
            MemorySegment.copy(uniqueId, 0, id, JAVA_BYTE, 0, UNIQUE_ID_BYTES);
            MemorySegment comm = arena.allocate(ADDRESS);
            check(NcclLibrary.ncclCommInitRank(comm, ranks, id, rank), "ncclCommInitRank");
            return comm.get(ADDRESS, 0).address();
        }
    }

    /**
     * Waits for a communicator's pending work, then frees it.
     *
     * @param comm the communicator
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static void commDestroy(long comm) {
        require();
        check(NcclLibrary.ncclCommDestroy(MemorySegment.ofAddress(comm)), "ncclCommDestroy");
    }

    /**
     * Stops a communicator's pending work and frees it (for error paths and teardown after a peer died).
     *
     * @param comm the communicator
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static void commAbort(long comm) {
        require();
        check(NcclLibrary.ncclCommAbort(MemorySegment.ofAddress(comm)), "ncclCommAbort");
    }

    /**
     * The asynchronous error state of a communicator (for example, a peer that went away).
     *
     * @param comm the communicator
     * @return {@link NcclLibrary#ncclSuccess}, {@link NcclLibrary#ncclInProgress} or an error code
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              when the query itself fails
     */
    public static int commAsyncError(long comm) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment error = arena.allocate(JAVA_INT);
            check(NcclLibrary.ncclCommGetAsyncError(MemorySegment.ofAddress(comm), error), "ncclCommGetAsyncError");
            return error.get(JAVA_INT, 0);
        }
    }

    /**
     * Enqueues a send of {@code count} elements to {@code peer} on a stream.
     *
     * @param buffer device memory to send
     * @param count  elements
     * @param type   the element type
     * @param peer   the receiving rank
     * @param comm   the communicator
     * @param stream the CUDA stream, 0 for the default stream
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static void send(long buffer, long count, NcclDataType type, int peer, long comm, long stream) {
        require();
        check(NcclLibrary.ncclSend(MemorySegment.ofAddress(buffer), count, type.cValue(), peer,
                MemorySegment.ofAddress(comm), MemorySegment.ofAddress(stream)), "ncclSend");
    }

    /**
     * Enqueues a receive of {@code count} elements from {@code peer} on a stream.
     *
     * @param buffer device memory to receive into
     * @param count  elements
     * @param type   the element type
     * @param peer   the sending rank
     * @param comm   the communicator
     * @param stream the CUDA stream, 0 for the default stream
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static void recv(long buffer, long count, NcclDataType type, int peer, long comm, long stream) {
        require();
        check(NcclLibrary.ncclRecv(MemorySegment.ofAddress(buffer), count, type.cValue(), peer,
                MemorySegment.ofAddress(comm), MemorySegment.ofAddress(stream)), "ncclRecv");
    }

    /**
     * Enqueues an all-reduce on a stream: every rank ends with the reduction of every rank's input.
     *
     * @param sendBuffer device memory to reduce
     * @param recvBuffer device memory for the result; may equal {@code sendBuffer}
     * @param count      elements
     * @param type       the element type
     * @param op         the reduction
     * @param comm       the communicator
     * @param stream     the CUDA stream, 0 for the default stream
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static void allReduce(long sendBuffer, long recvBuffer, long count, NcclDataType type, NcclRedOp op,
                                 long comm, long stream) {
        require();
        check(NcclLibrary.ncclAllReduce(MemorySegment.ofAddress(sendBuffer), MemorySegment.ofAddress(recvBuffer), count,
                type.cValue(), op.cValue(), MemorySegment.ofAddress(comm), MemorySegment.ofAddress(stream)),
                "ncclAllReduce");
    }

    /**
     * Starts a group: the calls up to {@link #groupEnd()} are issued together (needed for a send
     * and a receive that depend on each other, such as a rank sending to itself).
     *
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static void groupStart() {
        require();
        check(NcclLibrary.ncclGroupStart(), "ncclGroupStart");
    }

    /**
     * Ends a group started by {@link #groupStart()} and issues its calls.
     *
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error
     */
    public static void groupEnd() {
        require();
        check(NcclLibrary.ncclGroupEnd(), "ncclGroupEnd");
    }
}
