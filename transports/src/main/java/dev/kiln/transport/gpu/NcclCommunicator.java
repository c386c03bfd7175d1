package dev.kiln.transport.gpu;

import dev.kiln.cuda.Cuda;
import dev.kiln.nccl.Nccl;
import dev.kiln.nccl.NcclDataType;
import dev.kiln.nccl.NcclRedOp;
import dev.kiln.tensor.DType;

import java.time.Duration;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A {@link Communicator} over a non-blocking NCCL communicator ({@code dev.kiln.nccl.Nccl},
 * {@code ncclCommInitRankConfig} with {@code blocking = 0}): joining returns at once and
 * {@link #awaitReady} polls {@code ncclCommGetAsyncError} with a deadline, so a rank whose peers never come
 * cannot hang its caller, and {@link #abort()} can end it from another thread. Point-to-point operations move
 * bytes ({@code ncclUint8}), the all-reduce sums elements of the given type. Every operation is enqueued on
 * this rank's CUDA stream; a call that NCCL answers with {@code ncclInProgress} is polled until issued.
 *
 * <p><b>Not yet verified on a GPU</b>: it compiles against the bindings, and its tests are skipped where CUDA
 * or NCCL is unavailable (see {@code docs/gpu.md}).
 *
 * <p>Threads: operations from one thread at a time, whose current device is this rank's (Kiln calls them on
 * the rank's actor thread); {@link #asyncError()} and {@link #abort()} from any thread: the handle is guarded
 * so that an abort never frees it under a running call.
 */
public final class NcclCommunicator implements Communicator {

    private final long comm;
    private final int rank;
    private final int size;
    private final int device;
    private final long stream;
    /** Calls hold the read lock for the duration of one NCCL call; abort and finish take the write lock. */
    private final ReentrantReadWriteLock handle = new ReentrantReadWriteLock();
    private volatile boolean freed;
    private volatile boolean aborted;

    private NcclCommunicator(long comm, int rank, int size, int device, long stream) {
        this.comm = comm;
        this.rank = rank;
        this.size = size;
        this.device = device;
        this.stream = stream;
    }

    /**
     * Makes the id every rank passes to {@link #join}; one rank's process calls it, the control plane carries it.
     *
     * @return the {@value Nccl#UNIQUE_ID_BYTES}-byte id
     * @throws dev.kiln.cuda.NativeUnavailableException when NCCL is unavailable
     */
    public static byte[] uniqueId() {
        return Nccl.uniqueId();
    }

    /**
     * Starts joining a communicator without blocking.
     *
     * @param size     the number of ranks
     * @param uniqueId the id from {@link #uniqueId()}, the same on every rank
     * @param rank     this rank
     * @param device   the CUDA device this rank uses: the calling thread's current device
     * @param stream   the stream operations are enqueued on, 0 for the device's default stream; the caller keeps it
     * @return the rank, joining; {@link #awaitReady} before use
     * @throws IllegalStateException                    if the calling thread's current device is not {@code device}
     * @throws dev.kiln.cuda.NativeUnavailableException when CUDA or NCCL is unavailable
     * @throws dev.kiln.nccl.NcclException              on an NCCL error
     */
    public static NcclCommunicator join(int size, byte[] uniqueId, int rank, int device, long stream) {
        if (Cuda.device() != device) {
            throw new IllegalStateException("NCCL rank " + rank + " joins on gpu" + device + ", but the calling thread's"
                    + " current device is gpu" + Cuda.device() + ": join on the rank's own (actor) thread");
        }
        return new NcclCommunicator(Nccl.commInitRankNonBlocking(size, uniqueId, rank), rank, size, device, stream);
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public int device() {
        return device;
    }

    @Override
    public void awaitReady(Duration timeout) {
        if (!awaitIssued(System.nanoTime() + timeout.toNanos())) {
            String why = aborted ? "it was aborted" : "not every rank joined within " + timeout;
            abort();
            throw new IllegalStateException("NCCL rank " + rank + " of " + size + " on gpu" + device + " could not join: "
                    + why);
        }
        String error = asyncError();
        if (error != null) {
            abort();
            throw new IllegalStateException("NCCL rank " + rank + " of " + size + " on gpu" + device + " could not join: "
                    + error);
        }
    }

    /** Polls until NCCL no longer says {@code ncclInProgress}; false on the deadline or an abort. */
    private boolean awaitIssued(long deadline) {
        long park = 1_000;
        while (true) {
            int state = state();
            if (state != Nccl.IN_PROGRESS) {
                return state != -1;
            }
            if (deadline != Long.MAX_VALUE && System.nanoTime() - deadline > 0) {
                return false;
            }
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 1_000_000);
        }
    }

    /** @return {@code ncclCommGetAsyncError}, or -1 once the handle is freed */
    private int state() {
        handle.readLock().lock();
        try {
            return freed ? -1 : Nccl.commAsyncError(comm);
        } finally {
            handle.readLock().unlock();
        }
    }

    @Override
    public String asyncError() {
        handle.readLock().lock();
        try {
            if (freed) {
                return aborted ? "aborted" : null;
            }
            int rc = Nccl.commAsyncError(comm);
            return rc == Nccl.SUCCESS || rc == Nccl.IN_PROGRESS ? null
                    : Nccl.errorString(rc) + " (" + rc + "): " + Nccl.lastError(comm);
        } finally {
            handle.readLock().unlock();
        }
    }

    @Override
    public void send(long address, long bytes, int peer) {
        call(() -> Nccl.send(address, bytes, NcclDataType.UINT8, peer, comm, stream));
    }

    @Override
    public void recv(long address, long bytes, int peer) {
        call(() -> Nccl.recv(address, bytes, NcclDataType.UINT8, peer, comm, stream));
    }

    @Override
    public void allReduce(long sendAddress, long recvAddress, long count, DType dtype) {
        call(() -> Nccl.allReduce(sendAddress, recvAddress, count, type(dtype), NcclRedOp.SUM, comm, stream));
    }

    @Override
    public void groupStart() {
        call(Nccl::groupStart);
    }

    @Override
    public void groupEnd() {
        call(Nccl::groupEnd);
    }

    /** One NCCL call under the read lock, then polled until issued (a non-blocking communicator may defer). */
    private void call(Runnable nccl) {
        handle.readLock().lock();
        try {
            checkOpen();
            nccl.run();
        } finally {
            handle.readLock().unlock();
        }
        if (!awaitIssued(Long.MAX_VALUE)) {
            throw new IllegalStateException("NCCL rank " + rank + " was aborted while an operation was being issued");
        }
        String error = asyncError();
        if (error != null) {
            throw new IllegalStateException("NCCL rank " + rank + " is in error: " + error);
        }
    }

    @Override
    public void synchronize() {
        checkOpen();
        if (stream == 0) {
            Cuda.setDevice(device);
        }
        Cuda.streamSynchronize(stream);
    }

    @Override
    public boolean finish(Duration timeout) {
        if (freed) {
            return !aborted;
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        long park = 10_000;
        while (!idle()) {
            if (System.nanoTime() - deadline > 0) {
                abort();
                return false;
            }
            LockSupport.parkNanos(park);
            park = Math.min(park * 2, 1_000_000);
        }
        handle.writeLock().lock();
        try {
            if (freed) {
                return !aborted;
            }
            Nccl.commFinalize(comm);
        } finally {
            handle.writeLock().unlock();
        }
        if (!awaitIssued(deadline)) {
            abort();
            return false;
        }
        handle.writeLock().lock();
        try {
            if (!freed) {
                freed = true;
                Nccl.commDestroy(comm);
            }
            return !aborted;
        } finally {
            handle.writeLock().unlock();
        }
    }

    private boolean idle() {
        if (stream == 0) {
            Cuda.setDevice(device);
        }
        return Cuda.streamQuery(stream);
    }

    @Override
    public void abort() {
        handle.writeLock().lock();
        try {
            if (!freed) {
                freed = true;
                aborted = true;
                Nccl.commAbort(comm);
            }
        } finally {
            handle.writeLock().unlock();
        }
    }

    @Override
    public void close() {
        abort();
    }

    /**
     * @param dtype a Kiln element type
     * @return the NCCL data type with the same layout
     */
    static NcclDataType type(DType dtype) {
        return switch (dtype) {
            case F32 -> NcclDataType.FLOAT32;
            case F16 -> NcclDataType.FLOAT16;
            case BF16 -> NcclDataType.BFLOAT16;
            case F64 -> NcclDataType.FLOAT64;
            case I8 -> NcclDataType.INT8;
            case I32 -> NcclDataType.INT32;
            case I64 -> NcclDataType.INT64;
            case U8 -> NcclDataType.UINT8;
        };
    }

    private void checkOpen() {
        if (freed) {
            throw new IllegalStateException("NCCL rank " + rank + " is " + (aborted ? "aborted" : "closed"));
        }
    }

    /** @return {@code NcclCommunicator[rank r of n on gpuD]} */
    @Override
    public String toString() {
        return "NcclCommunicator[rank " + rank + " of " + size + " on gpu" + device + "]";
    }
}
