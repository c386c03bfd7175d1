package dev.kiln.bench;

import dev.kiln.tensor.Tensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The reader JVM of {@link ShmTransferBenchmark#crossProcess}: maps the benchmark's channel file as
 * reader 0 and, for sequence 0, 1, 2, ...: polls it (a short spin, then the channel's futex wait),
 * reads the view's first and last element, checks that both hold the sequence, and releases it.
 *
 * <p>It ends when its standard input ends: the benchmark closes it in its teardown, and the operating
 * system closes it when the benchmark JVM dies. Before it ends it prints how many tensors it read and
 * how many bytes its reading thread allocated per tensor, counted from the second-latest power-of-two
 * sequence on: at least the later half of its tensors, past the JIT's warm-up. Exit status: 0 stopped, 1 a
 * view held the wrong sequence, 3 its standard input ended but the reading thread did not stop within 5 s.
 */
public final class ShmTransferReader {

    private static volatile boolean stopped;

    private ShmTransferReader() {
    }

    /**
     * @param args the channel's file, and its slot count
     * @throws IOException if the file cannot be mapped as a channel of that many slots and one reader
     */
    public static void main(String[] args) throws IOException {
        Path file = Path.of(args[0]);
        int slots = Integer.parseInt(args[1]);
        Thread.ofPlatform().daemon().name("stdin-watch").start(ShmTransferReader::watchInput);
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (ShmChannel channel = ShmChannel.open(ShmTransferBenchmark.spec(slots, 0), file, new ValueCodec(),
                new Waker[1])) {
            // Allocation counted at sequences 1, 2, 4, 8, ...: the latest mark and the one before it.
            long markSequence = 0;
            long markBytes = threads.getCurrentThreadAllocatedBytes();
            long latestSequence = markSequence;
            long latestBytes = markBytes;
            long bytes = 0;
            for (long s = 0; ; s++) {
                Object value;
                int spins = 0;
                while ((value = channel.poll(0, s)) == Channel.NOT_READY) {
                    if (stopped) {
                        long allocated = threads.getCurrentThreadAllocatedBytes() - markBytes;
                        System.out.printf(Locale.ROOT, "ShmTransferReader: %,d tensors of %,d bytes read; the reading"
                                        + " thread allocated %,.1f B per tensor over the last %,d%n", s, bytes,
                                (double) allocated / Math.max(1, s - markSequence), s - markSequence);
                        return;
                    }
                    if (spins < ShmTransferBenchmark.SPINS) {
                        spins++;
                        Thread.onSpinWait();
                    } else {
                        channel.awaitPublished(0, s, ShmTransferBenchmark.FUTEX_NANOS);
                    }
                }
                Tensor view = (Tensor) value;
                long first = view.getLong(0);
                long last = view.getLong(view.numel() - 1);
                if (first != s || last != s) {
                    System.out.println("ShmTransferReader: sequence " + s + " has first element " + first
                            + " and last element " + last);
                    System.exit(1);
                }
                bytes = view.byteSize();
                channel.release(0, s);
                if ((s & (s + 1)) == 0) { // s + 1 is a power of two
                    markSequence = latestSequence;
                    markBytes = latestBytes;
                    latestSequence = s + 1;
                    latestBytes = threads.getCurrentThreadAllocatedBytes();
                }
            }
        }
    }

    private static void watchInput() {
        try {
            while (System.in.read() != -1) {
                // The benchmark writes nothing; only the end of the stream matters.
            }
        } catch (IOException e) {
            // A broken pipe ends the stream as well.
        }
        stopped = true;
        try {
            Thread.sleep(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Runtime.getRuntime().halt(3);
    }
}
