package dev.kiln.transport.gpu;

import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;

/**
 * One rank of a communicator: point-to-point sends and receives and an all-reduce between a fixed
 * set of ranks, with NCCL's semantics. Two implementations: {@link NcclCommunicator} on GPUs and
 * {@link CpuCommunicator} on host memory within one JVM, which follows the same rules so that a
 * schedule that deadlocks on NCCL also deadlocks there (and is caught in CI).
 *
 * <p>Rules: the point-to-point operations from rank a to rank b match the operations of b from a in
 * the order each side issues them, and a matched pair must have the same size. An operation issued
 * outside a group does not complete before its peer issues the matching one, so two ranks that both
 * send first deadlock; the order the compiler gives ({@code ExecutionPlan.NcclSchedule}) avoids that.
 * Operations issued between {@link #groupStart()} and {@link #groupEnd()} are issued together when the
 * outermost group ends and complete together (a rank may then send to and receive from itself).
 * Collectives ({@link #allReduce}) match across all ranks in issue order.
 *
 * <p>Buffers are addresses: device pointers for {@link NcclCommunicator}, host addresses
 * ({@code MemorySegment.address()} of native memory) for {@link CpuCommunicator}; they must stay valid
 * until the operation completes. Completion: {@link CpuCommunicator} completes an operation before the
 * call (or the outermost {@code groupEnd}) returns; {@link NcclCommunicator} enqueues it on its CUDA
 * stream and returns, and {@link #synchronize()} waits for it.
 *
 * <p>Threads: one thread at a time per rank object (different ranks may run on different threads).
 */
public interface Communicator extends AutoCloseable {

    /** @return this rank, 0 to {@code size() - 1} */
    int rank();

    /** @return the number of ranks */
    int size();

    /**
     * Sends {@code bytes} bytes to {@code peer}.
     *
     * @param address the first byte to send
     * @param bytes   how many bytes, >= 0; the peer's matching receive must ask for as many
     * @param peer    the receiving rank
     * @throws IllegalArgumentException if the peer is out of range or the size is negative
     * @throws IllegalStateException    when the communicator is closed or aborted, or (CPU) the peer did not match in time
     */
    void send(long address, long bytes, int peer);

    /**
     * Receives {@code bytes} bytes from {@code peer}.
     *
     * @param address where the bytes go
     * @param bytes   how many bytes, >= 0; the peer's matching send must carry as many
     * @param peer    the sending rank
     * @throws IllegalArgumentException if the peer is out of range or the size is negative
     * @throws IllegalStateException    when the communicator is closed or aborted, or (CPU) the peer did not match in time
     */
    void recv(long address, long bytes, int peer);

    /**
     * Sends a tensor's bytes ({@link DeviceTensor#pointer()}, {@link DeviceTensor#byteSize()}) to {@code peer}.
     * The caller orders the send after the tensor's producer ({@link DeviceTensor#stream()}).
     *
     * @param tensor the tensor; for {@link CpuCommunicator} it must describe host memory
     * @param peer   the receiving rank
     */
    default void send(DeviceTensor tensor, int peer) {
        send(tensor.pointer(), tensor.byteSize(), peer);
    }

    /**
     * Receives {@link DeviceTensor#byteSize()} bytes from {@code peer} into a tensor's memory.
     *
     * @param into the tensor to fill; for {@link CpuCommunicator} it must describe host memory
     * @param peer the sending rank
     */
    default void recv(DeviceTensor into, int peer) {
        recv(into.pointer(), into.byteSize(), peer);
    }

    /**
     * Sums {@code count} elements element-wise over all ranks; every rank receives the sum.
     *
     * @param sendAddress this rank's input
     * @param recvAddress where the sum goes; may equal {@code sendAddress}
     * @param count       elements, the same on every rank
     * @param dtype       the element type, the same on every rank
     * @throws IllegalStateException when the communicator is closed or aborted, or (CPU) the ranks did not all join in time
     */
    void allReduce(long sendAddress, long recvAddress, long count, DType dtype);

    /** Starts a group; groups nest, and the outermost {@link #groupEnd()} issues the operations. */
    void groupStart();

    /**
     * Ends a group; at the outermost one, issues the group's operations together.
     *
     * @throws IllegalStateException without a matching {@link #groupStart()}
     */
    void groupEnd();

    /** Waits until every operation issued so far has completed. */
    void synchronize();

    /** Stops this communicator's pending operations and frees it (after a peer died, or on a failed teardown). */
    void abort();

    /** Frees the communicator after its pending operations; later calls throw {@link IllegalStateException}. */
    @Override
    void close();
}
