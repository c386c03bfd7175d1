package dev.kiln.transport.gpu;

import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;

import java.time.Duration;

/**
 * One rank of a communicator: point-to-point sends and receives and an all-reduce between a fixed
 * set of ranks, with NCCL's semantics. Made by {@link DeviceOps#joinCommunicator}; two implementations:
 * {@link NcclCommunicator} on GPUs and {@link SimulatedCommunicator} on simulated GPUs, which follows the
 * same rules so that a schedule that deadlocks on NCCL also deadlocks there (and is caught in CI).
 *
 * <p>Rules: the point-to-point operations from rank a to rank b match the operations of b from a in
 * the order each side issues them, and a matched pair must have the same size. An operation issued
 * outside a group does not complete before its peer issues the matching one, so two ranks that both
 * send first deadlock; the order the compiler gives ({@code ExecutionPlan.NcclSchedule}) avoids that.
 * Operations issued between {@link #groupStart()} and {@link #groupEnd()} are issued together when the
 * outermost group ends and complete together (a rank may then send to and receive from itself).
 * Collectives ({@link #allReduce}) match across all ranks in issue order.
 *
 * <p><b>Asynchronous.</b> Every operation is enqueued on the rank's stream (given when it joined) and the
 * call returns; the stream's later work waits for it, and {@link #synchronize()} waits on the host. An
 * operation whose peer never matches it (the peer died, or the orders deadlock) keeps its stream waiting
 * until the communicator is {@link #abort aborted}, as with NCCL: a watchdog that learns of a dead peer,
 * or sees {@link #asyncError()}, aborts. Buffers are device addresses on the rank's device; they must
 * stay valid until the operation completes.
 *
 * <p>Threads: one thread at a time per rank object (different ranks may run on different threads);
 * {@link #asyncError()} and {@link #abort()} may be called from any thread.
 */
public interface Communicator extends AutoCloseable {

    /** Bytes of a communicator id ({@code ncclUniqueId}). */
    int ID_BYTES = 128;

    /** @return this rank, 0 to {@code size() - 1} */
    int rank();

    /** @return the number of ranks */
    int size();

    /** @return the device this rank uses */
    int device();

    /**
     * Waits until every rank has joined (a non-blocking {@code ncclCommInitRank} has finished). On timeout,
     * or when joining fails, the communicator is aborted.
     *
     * @param timeout how long to wait
     * @throws IllegalStateException if the ranks did not all join in time, naming this rank and the timeout,
     *                               or joining failed (with the library's reason)
     */
    void awaitReady(Duration timeout);

    /**
     * What the library reports about the communicator without blocking ({@code ncclCommGetAsyncError}).
     *
     * @return null while it is healthy (or still joining), else the error; the communicator must then be aborted
     */
    String asyncError();

    /**
     * Sends {@code bytes} bytes to {@code peer}.
     *
     * @param address the first byte to send
     * @param bytes   how many bytes, >= 0; the peer's matching receive must ask for as many
     * @param peer    the receiving rank
     * @throws IllegalArgumentException if the peer is out of range or the size is negative
     * @throws IllegalStateException    when the communicator is closed or aborted
     */
    void send(long address, long bytes, int peer);

    /**
     * Receives {@code bytes} bytes from {@code peer}.
     *
     * @param address where the bytes go
     * @param bytes   how many bytes, >= 0; the peer's matching send must carry as many
     * @param peer    the sending rank
     * @throws IllegalArgumentException if the peer is out of range or the size is negative
     * @throws IllegalStateException    when the communicator is closed or aborted
     */
    void recv(long address, long bytes, int peer);

    /**
     * Sends a tensor's bytes ({@link DeviceTensor#pointer()}, {@link DeviceTensor#byteSize()}) to {@code peer}.
     * The caller orders the send after the tensor's producer ({@link DeviceTensor#stream()}).
     *
     * @param tensor the tensor, on this rank's device
     * @param peer   the receiving rank
     */
    default void send(DeviceTensor tensor, int peer) {
        send(tensor.pointer(), tensor.byteSize(), peer);
    }

    /**
     * Receives {@link DeviceTensor#byteSize()} bytes from {@code peer} into a tensor's memory.
     *
     * @param into the tensor to fill, on this rank's device
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
     * @throws IllegalStateException when the communicator is closed or aborted
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

    /**
     * Waits until every operation issued so far has completed; an aborted communicator's operations count as
     * completed.
     */
    void synchronize();

    /**
     * Stops this rank's pending operations (their streams go on, the data they move is undefined) and frees it;
     * for a peer that died or a teardown that cannot wait. Any thread; idempotent.
     */
    void abort();

    /**
     * Ends the communicator in order: waits up to {@code timeout} for its pending operations, then frees it
     * ({@code ncclCommFinalize}, then {@code ncclCommDestroy}); if they do not finish in time (a peer stopped
     * early, or died), aborts it instead. Later calls throw {@link IllegalStateException}. Idempotent.
     *
     * @param timeout how long the pending operations may take
     * @return true if it ended in order, false if it was aborted (now or before)
     */
    boolean finish(Duration timeout);

    /** Aborts the communicator unless {@link #finish} or {@link #abort()} ended it already: pending work is dropped. */
    @Override
    void close();
}
