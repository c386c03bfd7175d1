package dev.kiln.bench;

import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.transport.gpu.CudaDeviceOps;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.SimulatedDeviceOps;
import dev.kiln.transport.gpu.SimulatedGpus;

import java.io.File;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * What the GPU benchmarks share: where their device comes from, and filling and checking device memory from the
 * host. The device is GPU 0 through CUDA ({@link CudaDeviceOps}); with {@code -Dkiln.bench.gpu=simulated} it is a
 * simulated GPU on host memory ({@link SimulatedDeviceOps}), so that the benchmarks' logic, and {@code gpu/verify}
 * around them, run on a machine without a GPU: their figures then measure the simulator, not a GPU.
 *
 * <p>Setup code only (never in a measured operation); called from one thread at a time.
 */
final class GpuBench {

    /** The system property that picks the device: unset or {@code cuda}, or {@code simulated}. */
    static final String PROPERTY = "kiln.bench.gpu";
    /** Device memory of the simulated GPU: enough for every benchmark's buffers at 64 MiB. */
    static final long SIMULATED_BYTES = 1L << 30;

    private GpuBench() {
    }

    /**
     * @return whether the benchmarks run on a simulated GPU ({@code -Dkiln.bench.gpu=simulated})
     * @throws IllegalArgumentException on another value than {@code cuda} or {@code simulated}
     */
    static boolean simulated() {
        String value = System.getProperty(PROPERTY, "cuda");
        return switch (value) {
            case "cuda" -> false;
            case "simulated" -> true;
            default -> throw new IllegalArgumentException("-D" + PROPERTY + "=" + value + ": use cuda (the default) or"
                    + " simulated");
        };
    }

    /**
     * Fails fast without a GPU, unless simulated.
     *
     * @param benchmark the benchmark's name, for the message
     * @throws IllegalStateException without CUDA, with CUDA's reason and the property that runs it simulated
     */
    static void requireGpu(String benchmark) {
        if (!simulated() && !Cuda.isAvailable()) {
            throw new IllegalStateException(benchmark + " needs a GPU: " + Cuda.unavailableReason()
                    + " (-D" + PROPERTY + "=simulated runs it on a simulated GPU, to check the benchmark itself)");
        }
    }

    /**
     * Opens GPU 0: CUDA's, or a new simulated machine of one GPU of {@value #SIMULATED_BYTES} bytes.
     *
     * @param benchmark the benchmark's name, for the message
     * @return the device operations; close them
     * @throws IllegalStateException without a GPU, unless simulated (see {@link #requireGpu})
     */
    static DeviceOps open(String benchmark) {
        requireGpu(benchmark);
        return simulated() ? SimulatedDeviceOps.create(SimulatedGpus.of(1, SIMULATED_BYTES)) : new CudaDeviceOps();
    }

    /**
     * A pattern that survives any copy and a one-rank sum: element {@code i}, a float, is an integer below 2^24
     * (exact, never denormal or NaN), distinct for every {@code i} below 2^24 (64 MiB of floats) and different for
     * each seed.
     *
     * @param bytes a multiple of 4
     * @param seed  which pattern
     * @return {@code bytes} of native memory from {@code arena} holding pattern {@code seed}
     */
    static MemorySegment pattern(Arena arena, long bytes, long seed) {
        MemorySegment host = arena.allocate(bytes, 4096);
        long salt = seed * 0x9E3779B1L;
        for (long i = 0; i < bytes / Float.BYTES; i++) {
            host.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (((i * 2654435761L) ^ salt) & 0xFFFFFF));
        }
        return host;
    }

    /**
     * Copies pattern {@code seed} into device memory and waits for it.
     *
     * @param stream a stream of GPU 0
     */
    static void fill(DeviceOps ops, long pointer, long bytes, long seed, long stream) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = pattern(arena, bytes, seed);
            ops.copyAsync(0, pointer, host.address(), bytes, MemcpyKind.HOST_TO_DEVICE, stream);
            ops.synchronizeStream(0, stream);
        }
    }

    /**
     * Checks that device memory holds pattern {@code seed}, byte for byte.
     *
     * @param what   the benchmark and way, for the message
     * @param stream a stream of GPU 0, ordered after the work that wrote the memory
     * @throws IllegalStateException naming the first differing byte
     */
    static void check(String what, DeviceOps ops, long pointer, long bytes, long seed, long stream) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment want = pattern(arena, bytes, seed);
            MemorySegment got = arena.allocate(bytes, 4096);
            ops.copyAsync(0, got.address(), pointer, bytes, MemcpyKind.DEVICE_TO_HOST, stream);
            ops.synchronizeStream(0, stream);
            long at = want.mismatch(got);
            if (at >= 0) {
                throw new IllegalStateException(what + ": byte " + at + " of " + bytes + " is " + got.get(ValueLayout.JAVA_BYTE, at)
                        + ", expected " + want.get(ValueLayout.JAVA_BYTE, at) + " (pattern " + seed + ")");
            }
        }
    }

    /**
     * Starts a second JVM as ShmTransferBenchmark starts its reader: this JVM's {@code java.home}, JVM flags and
     * class path (the {@code -Dkiln.bench.gpu} setting travels with the flags). Its standard input stays a pipe from
     * this JVM, whose end ends it; its output goes to this JVM's.
     *
     * @param main the main class
     * @param args its arguments
     * @return the process
     * @throws IOException if it cannot start
     */
    static Process startJvm(Class<?> main, String... args) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(new File(System.getProperty("java.home"), "bin/java").getPath());
        command.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        command.add(main.getName());
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectOutput(ProcessBuilder.Redirect.INHERIT)
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
    }

    /**
     * Ends a JVM from {@link #startJvm}: closes its standard input, waits up to 10 s, then kills it.
     *
     * @param process the process
     * @return its exit status, or -1 if it had to be killed
     */
    static int stopJvm(Process process) {
        try {
            process.getOutputStream().close();
            if (process.waitFor(10, TimeUnit.SECONDS)) {
                return process.exitValue();
            }
            System.err.println("the second JVM did not exit within 10 s of its input closing; killing it");
        } catch (IOException e) {
            System.err.println("cannot close the second JVM's input: " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        process.destroyForcibly();
        return -1;
    }
}
