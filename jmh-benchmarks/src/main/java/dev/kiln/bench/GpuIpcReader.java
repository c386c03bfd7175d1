package dev.kiln.bench;

import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.gpu.CudaDeviceOps;
import dev.kiln.transport.gpu.CudaIpcChannel;
import dev.kiln.transport.gpu.DeviceOps;
import dev.kiln.transport.gpu.SimulatedDeviceOps;
import dev.kiln.transport.gpu.SimulatedGpus;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;

/**
 * The reader JVM of {@link GpuIpcBenchmark}: opens the benchmark's {@link CudaIpcChannel} as reader 0 on GPU 0 and,
 * for sequence 0, 1, 2, ...: polls it (a short spin, then the channel's futex wait), synchronizes its stream (the
 * writer's copy into its slot has landed), checks every byte of the first {@value #CHECKED} tensors against the
 * pattern of their sequence ({@link GpuBench#pattern}), and releases the slot.
 *
 * <p>It ends when its standard input ends (the benchmark closes it in its teardown, after closing its writer end;
 * the operating system closes it when the benchmark JVM dies), printing how many tensors it read. Exit status: 0
 * stopped, 1 a tensor arrived wrong or the channel failed.
 */
public final class GpuIpcReader {

    /** Tensors checked byte for byte, each with its own pattern, before the measurement. */
    static final int CHECKED = 3;

    private static volatile boolean stopped;

    private GpuIpcReader() {
    }

    /**
     * @param args the channel's file, its slot count, the tensor's bytes, and {@code cuda} or the simulated machine's
     *             directory
     */
    public static void main(String[] args) {
        Path file = Path.of(args[0]);
        int slots = Integer.parseInt(args[1]);
        long bytes = Long.parseLong(args[2]);
        Thread.ofPlatform().daemon().name("stdin-watch").start(GpuIpcReader::watchInput);
        DeviceOps ops = args[3].equals("cuda") ? new CudaDeviceOps()
                : SimulatedDeviceOps.attach(Path.of(args[3]), SimulatedGpus.of(1, GpuBench.SIMULATED_BYTES));
        long read = 0;
        try {
            long stream = ops.createStream(0);
            try (CudaIpcChannel channel = CudaIpcChannel.openReader(GpuIpcBenchmark.spec(slots, bytes), file,
                    new ValueCodec(), ops, 0, 0, stream, null)) {
                for (long s = 0; ; s++) {
                    Object value;
                    int spins = 0;
                    while ((value = channel.poll(0, s)) == Channel.NOT_READY) {
                        if (stopped) {
                            read = s;
                            break;
                        }
                        if (spins < GpuIpcBenchmark.SPINS) {
                            spins++;
                            Thread.onSpinWait();
                        } else {
                            channel.awaitPublished(0, s, GpuIpcBenchmark.FUTEX_NANOS);
                        }
                    }
                    if (value == Channel.NOT_READY) {
                        break;
                    }
                    DeviceTensor t = (DeviceTensor) value;
                    ops.synchronizeStream(0, stream);
                    if (s < CHECKED) {
                        GpuBench.check("GpuIpcReader, sequence " + s, ops, t.pointer(), bytes, s, stream);
                    }
                    channel.release(0, s);
                }
            } finally {
                ops.destroyStream(stream);
            }
        } catch (IOException | RuntimeException e) {
            System.out.println("GpuIpcReader: " + e);
            e.printStackTrace(System.out);
            System.exit(1);
        } finally {
            ops.close();
        }
        System.out.printf("GpuIpcReader: %,d tensors of %,d bytes read, the first %d checked%n", read, bytes,
                Math.min(read, CHECKED));
    }

    private static void watchInput() {
        try (InputStream in = System.in) {
            while (in.read() >= 0) {
                // the benchmark writes nothing; only the end matters
            }
        } catch (IOException e) {
            // a broken pipe is an end too
        }
        stopped = true;
    }
}
