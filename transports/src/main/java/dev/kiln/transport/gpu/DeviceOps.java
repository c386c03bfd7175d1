package dev.kiln.transport.gpu;

import dev.kiln.cuda.MemcpyKind;

import java.lang.foreign.MemorySegment;

/**
 * The GPUs of one process, as Kiln uses them: devices, device memory, streams, events, asynchronous
 * copies, host pinning, CUDA IPC handles, kernel launches and NCCL communicators. Two implementations:
 * {@link CudaDeviceOps} over the CUDA runtime, driver API, NVRTC and NCCL, and
 * {@link SimulatedDeviceOps}, simulated GPUs on host memory that refuse, with CUDA's error names, what a
 * device refuses, so that GPU graphs are developed and tested without one. Nothing picks an
 * implementation by itself: whoever builds a channel passes one.
 *
 * <p><b>Devices are named, never implied.</b> Every call that CUDA would resolve on the calling thread's
 * current device takes the device explicitly: allocations, streams, events, IPC opens, and every stream
 * argument, where {@code 0} means the legacy default stream <em>of that device</em>. A non-zero stream
 * must belong to the device named with it. So no call depends on which device the calling thread has
 * current ({@link #currentDevice()}), and the current device of the calling thread is left as it was.
 *
 * <p>Handles are {@code long}s as in {@code dev.kiln.cuda.Cuda}: device addresses, {@code cudaStream_t}
 * and {@code cudaEvent_t}. Operations on a stream run in issue order; {@link #waitEvent} makes a stream's
 * later work wait for the last {@link #recordEvent} of that event issued before the call (none yet: no
 * wait); the event may belong to another device than the stream, as CUDA allows. An event is recorded
 * only on a stream of its own device ({@code cudaErrorInvalidResourceHandle} otherwise). Host-side calls
 * never wait for a peer; only the {@code synchronize} calls wait, for GPU work.
 *
 * <p>Errors of the device API are {@code dev.kiln.cuda.CudaException}s carrying CUDA's error code and name
 * (the simulator throws the same, with the same codes); misuse of this interface itself (a stream named
 * with another device) is an {@link IllegalArgumentException}.
 *
 * <p>Thread-safety: every method may be called from any thread.
 */
public interface DeviceOps extends AutoCloseable {

    /**
     * @return the id of the process whose handles {@link #openMemory} and {@link #openEvent} refuse
     *         (CUDA cannot open a handle in the process that exported it): the OS process id for CUDA
     */
    long processId();

    /** @return the devices this process sees, numbered 0 to {@code deviceCount() - 1} */
    int deviceCount();

    /**
     * The identity of a device across the processes of its host: JVMs may number devices differently
     * ({@code CUDA_VISIBLE_DEVICES}), their UUIDs agree. Creates no CUDA context.
     *
     * @param device a device index of this process
     * @return e.g. {@code GPU-5a1f0c2e-8d3b-4e6f-9a7c-1b2d3e4f5a6b}
     */
    String deviceUuid(int device);

    /**
     * @param device a device index
     * @return the device's memory, in bytes; creates no CUDA context
     */
    long totalBytes(int device);

    /**
     * The device's free memory now ({@code cudaMemGetInfo}). On CUDA this needs the device's context, so
     * call it only for devices this process uses anyway.
     *
     * @param device a device index
     * @return free bytes
     */
    long freeBytes(int device);

    /**
     * @param device a device index
     * @param peer   another device index
     * @return whether {@code device} can map and copy {@code peer}'s memory directly (CUDA peer access; a
     *         device is never its own peer)
     */
    boolean canAccessPeer(int device, int peer);

    /** @return the calling thread's current device; a new thread starts on device 0 */
    int currentDevice();

    /**
     * Makes {@code device} the calling thread's current device ({@code cudaSetDevice}); the device then
     * has a context.
     *
     * @param device a device index
     */
    void setCurrentDevice(int device);

    /**
     * Allocates device memory.
     *
     * @param device the device index
     * @param bytes  the size, > 0
     * @return the device address, aligned to at least 256 bytes; free it with {@link #free}
     */
    long allocate(int device, long bytes);

    /** @param pointer an address {@link #allocate} returned; waits for work that uses it, as {@code cudaFree} does */
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
     * @param device the device of the stream (and of the event)
     * @param event  the event
     * @param stream the stream, 0 for {@code device}'s default stream
     */
    void recordEvent(int device, long event, long stream);

    /**
     * Makes the later work of a stream wait for the event's last record; returns at once.
     *
     * @param device the device of the stream
     * @param stream the waiting stream, 0 for {@code device}'s default stream
     * @param event  the event, of any device
     */
    void waitEvent(int device, long stream, long event);

    /**
     * Blocks the calling thread until the event's last record has completed.
     *
     * @param event the event
     */
    void synchronizeEvent(long event);

    /**
     * Blocks the calling thread until all work issued so far on a stream has completed.
     *
     * @param device the device of the stream
     * @param stream the stream, 0 for {@code device}'s default stream
     */
    void synchronizeStream(int device, long stream);

    /**
     * Says, without blocking, whether a stream has run everything issued on it so far ({@code cudaStreamQuery}).
     *
     * @param device the device of the stream
     * @param stream the stream, 0 for {@code device}'s default stream
     * @return true when the stream is idle
     */
    boolean queryStream(int device, long stream);

    /**
     * Enqueues a copy on a stream.
     *
     * @param device      the device of the stream
     * @param destination the destination address (device or host, as {@code kind} says)
     * @param source      the source address
     * @param bytes       how many bytes
     * @param kind        {@link MemcpyKind#DEVICE_TO_DEVICE}, {@link MemcpyKind#DEVICE_TO_HOST} or
     *                    {@link MemcpyKind#HOST_TO_DEVICE}; host memory should be pinned ({@link #pinHost})
     *                    for the copy to be asynchronous
     * @param stream      the stream, 0 for {@code device}'s default stream
     */
    void copyAsync(int device, long destination, long source, long bytes, MemcpyKind kind, long stream);

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
     * Maps memory another process exported into {@code device}'s address space
     * ({@code cudaIpcOpenMemHandle} with {@code device} current). Memory of another device needs peer
     * access between the two ({@link #canAccessPeer}).
     *
     * @param device the device that will use the mapping
     * @param handle a handle from {@link #exportMemory} in another process; checked, since it comes from
     *               another process
     * @return its address in this process; unmap it with {@link #closeMemory}
     */
    long openMemory(int device, byte[] handle);

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
     * Opens an event another process exported, as an event of {@code device}
     * ({@code cudaIpcOpenEventHandle} with {@code device} current).
     *
     * @param device the device the opened event belongs to
     * @param handle a handle from {@link #exportEvent} in another process; checked
     * @return the event in this process; destroy it with {@link #destroyEvent}
     */
    long openEvent(int device, byte[] handle);

    /**
     * Launches a kernel on a stream: on CUDA, the kernel's CUDA C source compiled once per device with
     * NVRTC and launched with the driver API; on simulated GPUs, its host implementation, run in stream
     * order.
     *
     * @param device the device of the stream
     * @param stream the stream, 0 for {@code device}'s default stream
     * @param kernel the kernel
     * @param shape  grid, block and shared memory
     * @param args   the kernel's arguments in order: {@code DeviceTensor} (passed as its pointer, which must be
     *               on {@code device}), {@code Integer}, {@code Long}, {@code Float} or {@code Double}
     * @throws IllegalArgumentException on an argument of another type, or a tensor of another device
     */
    void launch(int device, long stream, GpuKernel kernel, GpuKernel.Shape shape, Object... args);

    /**
     * Makes the id of a new communicator ({@code ncclGetUniqueId}); one process calls it and hands the bytes
     * to every rank's process, which {@link #joinCommunicator}.
     *
     * @return the {@value Communicator#ID_BYTES}-byte id
     */
    byte[] newCommunicatorId();

    /**
     * Starts joining a communicator on {@code device} without blocking ({@code ncclCommInitRankConfig} with
     * {@code blocking = 0}); {@link Communicator#awaitReady} waits for every rank. Two ranks of one
     * communicator may not use one device.
     *
     * @param size   the number of ranks
     * @param id     the id from {@link #newCommunicatorId()}, the same on every rank
     * @param rank   this rank
     * @param device the device this rank uses
     * @param stream the stream its operations are enqueued on (0: {@code device}'s default stream); the caller
     *               keeps ownership
     * @return the rank, initialising
     */
    Communicator joinCommunicator(int size, byte[] id, int rank, int device, long stream);

    /** Frees what this object holds for the process (for the simulator: its share of the simulated machine). */
    @Override
    void close();
}
