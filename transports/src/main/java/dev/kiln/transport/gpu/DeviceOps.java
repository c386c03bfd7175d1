package dev.kiln.transport.gpu;

import dev.kiln.cuda.MemcpyKind;

import java.lang.foreign.MemorySegment;

/**
 * The device operations the GPU channels use: device memory, streams, events, asynchronous copies,
 * host pinning and CUDA IPC handles. Two implementations: {@link CudaDeviceOps} over the CUDA
 * runtime, and {@link SimulatedDeviceOps}, which carries out the same operations on host memory
 * with the same ordering rules, so that the channels' logic is tested without a GPU. Nothing picks
 * an implementation by itself: whoever builds a channel passes one.
 *
 * <p>Handles are {@code long}s as in {@code dev.kiln.cuda.Cuda}: device addresses, {@code cudaStream_t}
 * ({@code 0} is the legacy default stream) and {@code cudaEvent_t}. Operations on a stream run in
 * issue order; {@link #waitEvent} makes a stream's later work wait for the last {@link #recordEvent}
 * of that event issued before the call (none yet: no wait). Host-side calls never wait for a peer;
 * only {@link #synchronizeEvent} waits, for GPU work.
 *
 * <p>Thread-safety: every method may be called from any thread.
 */
public interface DeviceOps {

    /**
     * @return the id of the process whose handles {@link #openMemory} and {@link #openEvent} refuse
     *         (CUDA cannot open a handle in the process that exported it): the OS process id for CUDA
     */
    long processId();

    /**
     * Allocates device memory.
     *
     * @param device the device index
     * @param bytes  the size, > 0
     * @return the device address, aligned to at least 256 bytes; free it with {@link #free}
     */
    long allocate(int device, long bytes);

    /** @param pointer an address {@link #allocate} returned */
    void free(long pointer);

    /**
     * Creates a stream that does not synchronize with the legacy default stream.
     *
     * @param device the device index
     * @return the stream; destroy it with {@link #destroyStream}
     */
    long createStream(int device);

    /** @param stream a stream {@link #createStream} returned */
    void destroyStream(long stream);

    /**
     * Creates an event without timing.
     *
     * @param device       the device index
     * @param interprocess whether the event may be exported with {@link #exportEvent}
     * @return the event; destroy it with {@link #destroyEvent}
     */
    long createEvent(int device, boolean interprocess);

    /** @param event an event {@link #createEvent} or {@link #openEvent} returned */
    void destroyEvent(long event);

    /**
     * Records an event at the current end of a stream.
     *
     * @param event  the event
     * @param stream the stream
     */
    void recordEvent(long event, long stream);

    /**
     * Makes the later work of {@code stream} wait for the event's last record; returns at once.
     *
     * @param stream the waiting stream
     * @param event  the event
     */
    void waitEvent(long stream, long event);

    /**
     * Blocks the calling thread until the event's last record has completed.
     *
     * @param event the event
     */
    void synchronizeEvent(long event);

    /**
     * Enqueues a copy on a stream.
     *
     * @param destination the destination address (device or host, as {@code kind} says)
     * @param source      the source address
     * @param bytes       how many bytes
     * @param kind        {@link MemcpyKind#DEVICE_TO_DEVICE}, {@link MemcpyKind#DEVICE_TO_HOST} or
     *                    {@link MemcpyKind#HOST_TO_DEVICE}; host memory should be pinned ({@link #pinHost})
     *                    for the copy to be asynchronous
     * @param stream      the stream
     */
    void copyAsync(long destination, long source, long bytes, MemcpyKind kind, long stream);

    /**
     * Page-locks native host memory ({@code cudaHostRegister}) for fast asynchronous copies.
     *
     * @param host a native segment, not pinned yet
     */
    void pinHost(MemorySegment host);

    /** @param host the segment passed to {@link #pinHost} */
    void unpinHost(MemorySegment host);

    /**
     * Exports device memory for another process of this host.
     *
     * @param pointer the base address of an {@link #allocate} allocation
     * @return the 64-byte handle
     */
    byte[] exportMemory(long pointer);

    /**
     * Maps memory another process exported.
     *
     * @param handle a handle from {@link #exportMemory} in another process
     * @return its address in this process; unmap it with {@link #closeMemory}
     */
    long openMemory(byte[] handle);

    /** @param pointer an address {@link #openMemory} returned */
    void closeMemory(long pointer);

    /**
     * Exports an event created with {@code interprocess} set.
     *
     * @param event the event
     * @return the 64-byte handle
     */
    byte[] exportEvent(long event);

    /**
     * Opens an event another process exported.
     *
     * @param handle a handle from {@link #exportEvent} in another process
     * @return the event in this process; destroy it with {@link #destroyEvent}
     */
    long openEvent(byte[] handle);
}
