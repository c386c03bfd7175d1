package dev.kiln.nccl;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.NativeUnavailableException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;

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
 *
 * <p>A communicator from {@link #commInitRankNonBlocking} is non-blocking: its calls return at once
 * and may leave work in progress. The calls here that may do so ({@link #send}, {@link #recv},
 * {@link #allReduce}, {@link #allGather}, {@link #reduceScatter}, {@link #groupStart},
 * {@link #groupEnd}, {@link #commFinalize}) treat {@code ncclInProgress} as success; after each,
 * the caller polls {@link #commAsyncError} until it is no longer {@link #IN_PROGRESS} before the
 * next call on that communicator or a wait on its stream. Every other non-success code throws
 * {@link NcclException}.
 */
public final class Nccl {
    /** Bytes in an {@code ncclUniqueId}. */
    public static final int UNIQUE_ID_BYTES = 128;
    /** {@code ncclSuccess}. */
    public static final int SUCCESS = NcclLibrary.ncclSuccess;
    /** {@code ncclInProgress}: a non-blocking communicator is still initialising, working or finalising. */
    public static final int IN_PROGRESS = NcclLibrary.ncclInProgress;

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
     * Checks the result of a call a non-blocking communicator may leave in progress.
     *
     * @param result the {@code ncclResult_t}
     * @param call   the C function, for the message
     * @throws NcclException on any result but {@link #SUCCESS} and {@link #IN_PROGRESS}
     */
    static void checkAllowingInProgress(int result, String call) {
        if (result != NcclLibrary.ncclInProgress) {
            check(result, call);
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
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = uniqueIdSegment(arena, uniqueId);
            MemorySegment comm = arena.allocate(ADDRESS);
            check(NcclLibrary.ncclCommInitRank(comm, ranks, id, rank), "ncclCommInitRank");
            return comm.get(ADDRESS, 0).address();
        }
    }

    private static MemorySegment uniqueIdSegment(Arena arena, byte[] uniqueId) {
        if (uniqueId.length != UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("an ncclUniqueId has " + UNIQUE_ID_BYTES + " bytes, not " + uniqueId.length);
        }
        MemorySegment id = arena.allocate(NcclLibrary.ncclUniqueId);
        MemorySegment.copy(uniqueId, 0, id, JAVA_BYTE, 0, UNIQUE_ID_BYTES);
        return id;
    }

    /**
     * Starts joining a non-blocking communicator on the calling thread's current CUDA device and
     * returns at once. Poll {@link #commAsyncError} until it is no longer {@link #IN_PROGRESS}:
     * {@link #SUCCESS} means every rank has joined. Every later call on the communicator may
     * also leave work in progress (see the class doc). Needs NCCL 2.14 or later.
     *
     * @param ranks    how many ranks the communicator has
     * @param uniqueId the id from {@link #uniqueId()}, the same on every rank
     * @param rank     this rank, 0 to {@code ranks - 1}
     * @return the communicator, usable for {@link #commAsyncError}, {@link #commAbort} and
     *         {@link #lastError} at once; end it with {@link #commFinalize} then {@link #commDestroy},
     *         or with {@link #commAbort}
     * @throws IllegalArgumentException   when the id is not {@value #UNIQUE_ID_BYTES} bytes
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              when NCCL refuses at once (e.g. {@code ncclInvalidArgument}
     *                                    for a bad rank; a communicator NCCL made is aborted first);
     *                                    later failures show in {@link #commAsyncError}
     */
    public static long commInitRankNonBlocking(int ranks, byte[] uniqueId, int rank) {
        require();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = uniqueIdSegment(arena, uniqueId);
            MemorySegment comm = arena.allocate(ADDRESS);
            int result = NcclLibrary.ncclCommInitRankConfig(comm, ranks, id, rank, nonBlockingConfig(arena));
            MemorySegment made = comm.get(ADDRESS, 0);
            if (result != NcclLibrary.ncclSuccess && result != NcclLibrary.ncclInProgress
                    && !made.equals(MemorySegment.NULL)) {
                // NCCL hands out the communicator before its init job fails; the caller never sees it
                NcclLibrary.ncclCommAbort(made);
            }
            checkAllowingInProgress(result, "ncclCommInitRankConfig");
            return made.address();
        }
    }

    /**
     * An {@code ncclConfig_t} asking for a non-blocking communicator, every other field left to
     * NCCL. It uses the smallest layout with {@code blocking} and no padding, NCCL 2.17's
     * ({@link NcclLibrary#ncclConfig_t}, 40 bytes, {@code version} 2.17.0). NCCL 2.14 to 2.16 read
     * the first 24 bytes (their whole struct); later releases copy {@code size} bytes over their
     * defaults and reset the fields newer than {@code version} ({@code parseCommConfig},
     * {@code src/init.cc}), so every release from 2.14 on reads the same request.
     *
     * @param arena where to allocate it; NCCL reads it during {@code ncclCommInitRankConfig} only
     * @return the config
     */
    static MemorySegment nonBlockingConfig(Arena arena) {
        StructLayout layout = NcclLibrary.ncclConfig_t;
        MemorySegment config = arena.allocate(layout);
        config.set(JAVA_LONG, offset("size"), layout.byteSize());
        config.set(JAVA_INT, offset("magic"), NcclLibrary.NCCL_API_MAGIC);
        config.set(JAVA_INT, offset("version"), NcclLibrary.NCCL_CONFIG_VERSION_2_17);
        config.set(JAVA_INT, offset("blocking"), 0);
        for (String field : new String[] {"cgaClusterSize", "minCTAs", "maxCTAs"}) {
            config.set(JAVA_INT, offset(field), NcclLibrary.NCCL_CONFIG_UNDEF_INT);
        }
        config.set(ADDRESS, offset("netName"), MemorySegment.NULL); // NCCL_CONFIG_UNDEF_PTR
        return config;
    }

    private static long offset(String field) {
        return NcclLibrary.ncclConfig_t.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }

    /**
     * Flushes a communicator's work. A blocking communicator returns when it is quiescent; a
     * non-blocking one returns at once and {@link #commAsyncError} reports {@link #IN_PROGRESS}
     * until it is. Then {@link #commDestroy} frees it without blocking. Needs NCCL 2.14 or later.
     *
     * @param comm the communicator
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error other than {@code ncclInProgress}
     */
    public static void commFinalize(long comm) {
        require();
        checkAllowingInProgress(NcclLibrary.ncclCommFinalize(MemorySegment.ofAddress(comm)), "ncclCommFinalize");
    }

    /**
     * NCCL's message about the last error it reported, for logs next to an {@link NcclException} or
     * a failed {@link #commAsyncError}. NCCL keeps one message per process: {@code comm} is passed on
     * but NCCL ignores it.
     *
     * @param comm the communicator, or 0
     * @return the message; empty when NCCL has none
     * @throws NativeUnavailableException when NCCL is unavailable
     */
    @SuppressWarnings("restricted") // NCCL returns a NUL-terminated string it owns
    public static String lastError(long comm) {
        require();
        MemorySegment text = NcclLibrary.ncclGetLastError(MemorySegment.ofAddress(comm));
        return text.equals(MemorySegment.NULL) ? "" : text.reinterpret(Long.MAX_VALUE).getString(0);
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
     * The asynchronous state of a communicator: whether a non-blocking one is still working, or an
     * error (for example, a peer that went away). Does not block.
     *
     * @param comm the communicator
     * @return {@link #SUCCESS}, {@link #IN_PROGRESS} (a non-blocking communicator still initialising,
     *         working or finalising) or an error code
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
     * @throws NcclException              on an NCCL error other than {@code ncclInProgress} (see the class doc)
     */
    public static void send(long buffer, long count, NcclDataType type, int peer, long comm, long stream) {
        require();
        checkAllowingInProgress(NcclLibrary.ncclSend(MemorySegment.ofAddress(buffer), count, type.cValue(), peer,
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
     * @throws NcclException              on an NCCL error other than {@code ncclInProgress} (see the class doc)
     */
    public static void recv(long buffer, long count, NcclDataType type, int peer, long comm, long stream) {
        require();
        checkAllowingInProgress(NcclLibrary.ncclRecv(MemorySegment.ofAddress(buffer), count, type.cValue(), peer,
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
     * @throws NcclException              on an NCCL error other than {@code ncclInProgress} (see the class doc)
     */
    public static void allReduce(long sendBuffer, long recvBuffer, long count, NcclDataType type, NcclRedOp op,
                                 long comm, long stream) {
        require();
        checkAllowingInProgress(NcclLibrary.ncclAllReduce(MemorySegment.ofAddress(sendBuffer),
                MemorySegment.ofAddress(recvBuffer), count, type.cValue(), op.cValue(), MemorySegment.ofAddress(comm),
                MemorySegment.ofAddress(stream)), "ncclAllReduce");
    }

    /**
     * Enqueues an all-gather on a stream: every rank ends with every rank's {@code sendCount}
     * elements, rank i's at element offset {@code i * sendCount} of {@code recvBuffer}.
     *
     * @param sendBuffer device memory, {@code sendCount} elements; may be
     *                   {@code recvBuffer + rank * sendCount * type.bytes()} (in place)
     * @param recvBuffer device memory, {@code ranks * sendCount} elements
     * @param sendCount  elements each rank contributes (nccl.h's {@code sendcount})
     * @param type       the element type
     * @param comm       the communicator
     * @param stream     the CUDA stream, 0 for the default stream
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error other than {@code ncclInProgress} (see the class doc)
     */
    public static void allGather(long sendBuffer, long recvBuffer, long sendCount, NcclDataType type, long comm,
                                 long stream) {
        require();
        checkAllowingInProgress(NcclLibrary.ncclAllGather(MemorySegment.ofAddress(sendBuffer),
                MemorySegment.ofAddress(recvBuffer), sendCount, type.cValue(), MemorySegment.ofAddress(comm),
                MemorySegment.ofAddress(stream)), "ncclAllGather");
    }

    /**
     * Enqueues a reduce-scatter on a stream: the element-wise reduction of every rank's
     * {@code ranks * recvCount} elements, of which rank i receives block i ({@code recvCount} elements).
     *
     * @param sendBuffer device memory, {@code ranks * recvCount} elements
     * @param recvBuffer device memory, {@code recvCount} elements; may be
     *                   {@code sendBuffer + rank * recvCount * type.bytes()} (in place)
     * @param recvCount  elements each rank receives (nccl.h's {@code recvcount})
     * @param type       the element type
     * @param op         the reduction
     * @param comm       the communicator
     * @param stream     the CUDA stream, 0 for the default stream
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error other than {@code ncclInProgress} (see the class doc)
     */
    public static void reduceScatter(long sendBuffer, long recvBuffer, long recvCount, NcclDataType type, NcclRedOp op,
                                     long comm, long stream) {
        require();
        checkAllowingInProgress(NcclLibrary.ncclReduceScatter(MemorySegment.ofAddress(sendBuffer),
                MemorySegment.ofAddress(recvBuffer), recvCount, type.cValue(), op.cValue(),
                MemorySegment.ofAddress(comm), MemorySegment.ofAddress(stream)), "ncclReduceScatter");
    }

    /**
     * Starts a group: the calls up to {@link #groupEnd()} are issued together (needed for a send
     * and a receive that depend on each other, such as a rank sending to itself).
     *
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error other than {@code ncclInProgress} (see the class doc)
     */
    public static void groupStart() {
        require();
        checkAllowingInProgress(NcclLibrary.ncclGroupStart(), "ncclGroupStart");
    }

    /**
     * Ends a group started by {@link #groupStart()} and issues its calls.
     *
     * @throws NativeUnavailableException when NCCL is unavailable
     * @throws NcclException              on an NCCL error other than {@code ncclInProgress} (see the class doc)
     */
    public static void groupEnd() {
        require();
        checkAllowingInProgress(NcclLibrary.ncclGroupEnd(), "ncclGroupEnd");
    }
}
