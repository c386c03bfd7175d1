package dev.kiln.transport.gpu;

import dev.kiln.cuda.Cuda;
import dev.kiln.nccl.Nccl;
import dev.kiln.nccl.NcclDataType;
import dev.kiln.nccl.NcclRedOp;
import dev.kiln.tensor.DType;

/**
 * A {@link Communicator} over an NCCL communicator ({@code dev.kiln.nccl.Nccl}): point-to-point
 * operations move bytes ({@code ncclUint8}), the all-reduce sums elements of the given type. Every
 * operation is enqueued on this rank's CUDA stream and the call returns; {@link #synchronize()}
 * waits for the stream. Buffers are device pointers on this rank's device.
 *
 * <p><b>Not yet verified on a GPU</b>: it compiles against the bindings, and its tests are skipped
 * where CUDA or NCCL is unavailable (see {@code docs/gpu.md}).
 *
 * <p>Threads: one thread at a time; the thread must have this rank's device current
 * ({@code Cuda.setDevice}) when it calls.
 */
public final class NcclCommunicator implements Communicator {

    private final long comm;
    private final int rank;
    private final int size;
    private final long stream;
    private boolean freed;

    private NcclCommunicator(long comm, int rank, int size, long stream) {
        this.comm = comm;
        this.rank = rank;
        this.size = size;
        this.stream = stream;
    }

    /**
     * Makes the id every rank passes to {@link #join}; one rank calls it and sends the bytes to the others
     * (when the executor creates a plan's communicator, at compile time).
     *
     * @return the {@value Nccl#UNIQUE_ID_BYTES}-byte id
     * @throws dev.kiln.cuda.NativeUnavailableException when NCCL is unavailable
     */
    public static byte[] uniqueId() {
        return Nccl.uniqueId();
    }

    /**
     * Joins a communicator on {@code device}; blocks until every rank has joined.
     *
     * @param size     the number of ranks
     * @param uniqueId the id from {@link #uniqueId()}, the same on every rank
     * @param rank     this rank
     * @param device   the CUDA device this rank uses; made current on the calling thread
     * @param stream   the stream operations are enqueued on, 0 for the default stream; the caller keeps ownership
     * @return the rank
     * @throws dev.kiln.cuda.NativeUnavailableException when CUDA or NCCL is unavailable
     * @throws dev.kiln.nccl.NcclException              on an NCCL error
     */
    public static NcclCommunicator join(int size, byte[] uniqueId, int rank, int device, long stream) {
        Cuda.setDevice(device);
        return new NcclCommunicator(Nccl.commInitRank(size, uniqueId, rank), rank, size, stream);
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
    public void send(long address, long bytes, int peer) {
        checkOpen();
        Nccl.send(address, bytes, NcclDataType.UINT8, peer, comm, stream);
    }

    @Override
    public void recv(long address, long bytes, int peer) {
        checkOpen();
        Nccl.recv(address, bytes, NcclDataType.UINT8, peer, comm, stream);
    }

    @Override
    public void allReduce(long sendAddress, long recvAddress, long count, DType dtype) {
        checkOpen();
        Nccl.allReduce(sendAddress, recvAddress, count, type(dtype), NcclRedOp.SUM, comm, stream);
    }

    @Override
    public void groupStart() {
        checkOpen();
        Nccl.groupStart();
    }

    @Override
    public void groupEnd() {
        checkOpen();
        Nccl.groupEnd();
    }

    @Override
    public void synchronize() {
        checkOpen();
        Cuda.streamSynchronize(stream);
    }

    @Override
    public void abort() {
        if (!freed) {
            freed = true;
            Nccl.commAbort(comm);
        }
    }

    @Override
    public void close() {
        if (!freed) {
            freed = true;
            Nccl.commDestroy(comm);
        }
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
            throw new IllegalStateException("NCCL rank " + rank + " is closed or aborted");
        }
    }

    /** @return {@code NcclCommunicator[rank r of n]} */
    @Override
    public String toString() {
        return "NcclCommunicator[rank " + rank + " of " + size + "]";
    }
}
