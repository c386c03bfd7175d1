package dev.kiln.transport.gpu;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.CudaRuntime;
import dev.kiln.cuda.MemcpyKind;

import java.lang.foreign.MemorySegment;
import java.util.function.LongSupplier;

/**
 * {@link DeviceOps} over the CUDA runtime ({@code dev.kiln.cuda.Cuda}): streams are created
 * non-blocking, events without timing (and {@code cudaEventInterprocess} when asked), host memory is
 * pinned with {@code cudaHostRegisterDefault}, IPC memory is opened with lazy peer access.
 * Allocations, streams and events are made on the given device, with the calling thread's current
 * device restored afterwards. Errors are {@code CudaException}s.
 *
 * <p><b>Not yet verified on a GPU</b>: it compiles against the bindings; its tests are skipped without a
 * device (see {@code docs/gpu.md}). Thread-safe, as the CUDA runtime is.
 */
public final class CudaDeviceOps implements DeviceOps {

    private final long pid = ProcessHandle.current().pid();

    /**
     * @throws IllegalStateException when CUDA is unavailable, with {@code Cuda.unavailableReason()}
     */
    public CudaDeviceOps() {
        if (!Cuda.isAvailable()) {
            throw new IllegalStateException("GPU channels need CUDA: " + Cuda.unavailableReason());
        }
    }

    @Override
    public long processId() {
        return pid;
    }

    @Override
    public long allocate(int device, long bytes) {
        return onDevice(device, () -> Cuda.malloc(bytes));
    }

    @Override
    public void free(long pointer) {
        Cuda.free(pointer);
    }

    @Override
    public long createStream(int device) {
        return onDevice(device, () -> Cuda.streamCreate(CudaRuntime.cudaStreamNonBlocking));
    }

    @Override
    public void destroyStream(long stream) {
        Cuda.streamDestroy(stream);
    }

    @Override
    public long createEvent(int device, boolean interprocess) {
        int flags = CudaRuntime.cudaEventDisableTiming | (interprocess ? CudaRuntime.cudaEventInterprocess : 0);
        return onDevice(device, () -> Cuda.eventCreate(flags));
    }

    @Override
    public void destroyEvent(long event) {
        Cuda.eventDestroy(event);
    }

    @Override
    public void recordEvent(long event, long stream) {
        Cuda.eventRecord(event, stream);
    }

    @Override
    public void waitEvent(long stream, long event) {
        Cuda.streamWaitEvent(stream, event);
    }

    @Override
    public void synchronizeEvent(long event) {
        Cuda.eventSynchronize(event);
    }

    @Override
    public void copyAsync(long destination, long source, long bytes, MemcpyKind kind, long stream) {
        Cuda.memcpyAsync(destination, source, bytes, kind, stream);
    }

    @Override
    public void pinHost(MemorySegment host) {
        Cuda.hostRegister(host, CudaRuntime.cudaHostRegisterDefault);
    }

    @Override
    public void unpinHost(MemorySegment host) {
        Cuda.hostUnregister(host);
    }

    @Override
    public byte[] exportMemory(long pointer) {
        return Cuda.ipcGetMemHandle(pointer);
    }

    @Override
    public long openMemory(byte[] handle) {
        return Cuda.ipcOpenMemHandle(handle);
    }

    @Override
    public void closeMemory(long pointer) {
        Cuda.ipcCloseMemHandle(pointer);
    }

    @Override
    public byte[] exportEvent(long event) {
        return Cuda.ipcGetEventHandle(event);
    }

    @Override
    public long openEvent(byte[] handle) {
        return Cuda.ipcOpenEventHandle(handle);
    }

    private static long onDevice(int device, LongSupplier call) {
        int previous = Cuda.device();
        if (previous == device) {
            return call.getAsLong();
        }
        Cuda.setDevice(device);
        try {
            return call.getAsLong();
        } finally {
            Cuda.setDevice(previous);
        }
    }

    @Override
    public String toString() {
        return "CudaDeviceOps(pid " + pid + ")";
    }
}
