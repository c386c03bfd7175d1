package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;

/**
 * The other JVM of {@link ShmChannelCrossProcessTest}: passes {@link MixedValues} through a
 * {@link ShmChannel} as a reader or as the writer, waiting with the futex awaits.
 *
 * <p>Arguments: {@code reader <file> <count> <reader index>}, {@code writer <directory> <count> <name>},
 * or {@code both <directory> <count> <name>} for a writer thread and two reader threads in this JVM.
 * The writer role creates {@code <directory>/ready} once the channel exists. Prints whether futexes are
 * available first. Exit status: 0 every value passed, 1 a value was wrong, 2 a wait timed out.
 */
public final class ShmChannelChild {

    /** Longest wait for one sequence: far beyond any normal delay, short of the test's own timeout. */
    static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(60);

    private ShmChannelChild() {
    }

    /** @param args see the class comment */
    public static void main(String[] args) throws Exception {
        System.out.println(Futex.isAvailable() ? "futex available" : "futex unavailable");
        long count = Long.parseLong(args[2]);
        ChannelSpec spec = ShmChannelCrossProcessTest.spec();
        if (args[0].equals("both")) {
            try (ShmChannel ch = ShmChannel.create(spec, Path.of(args[1]), args[3], MixedValues.codec(), true, null,
                    new Waker[spec.readers().size()])) {
                FutureTask<String> reader0 = new FutureTask<>(() -> read(ch, 0, count));
                FutureTask<String> reader1 = new FutureTask<>(() -> read(ch, 1, count));
                Thread.ofPlatform().daemon().name("reader-0").start(reader0);
                Thread.ofPlatform().daemon().name("reader-1").start(reader1);
                String failure = write(ch, count);
                failure = failure != null ? failure : reader0.get(WAIT_NANOS, TimeUnit.NANOSECONDS);
                failure = failure != null ? failure : reader1.get(WAIT_NANOS, TimeUnit.NANOSECONDS);
                if (failure != null) {
                    System.out.println(failure);
                    System.exit(failure.startsWith("timeout") ? 2 : 1);
                }
            }
        } else if (args[0].equals("reader")) {
            int reader = Integer.parseInt(args[3]);
            try (ShmChannel ch = ShmChannel.open(spec, Path.of(args[1]), MixedValues.codec(), new Waker[spec.readers().size()])) {
                String failure = read(ch, reader, count);
                if (failure != null) {
                    System.out.println(failure);
                    System.exit(failure.startsWith("timeout") ? 2 : 1);
                }
            }
        } else {
            Path dir = Path.of(args[1]);
            try (ShmChannel ch = ShmChannel.create(spec, dir, args[3], MixedValues.codec(), true, null,
                    new Waker[spec.readers().size()])) {
                Files.createFile(dir.resolve("ready"));
                String failure = write(ch, count);
                if (failure == null && !ch.awaitReleased(count - 1 + spec.slots(), WAIT_NANOS)) {
                    failure = "timeout: the readers did not release the last sequence";
                }
                if (failure != null) {
                    System.out.println(failure);
                    System.exit(2);
                }
            }
        }
        System.out.println("done");
    }

    /** @return null once every sequence was read correctly, else what went wrong */
    static String read(ShmChannel ch, int reader, long count) {
        for (long s = 0; s < count; s++) {
            Object value;
            while ((value = ch.poll(reader, s)) == Channel.NOT_READY) {
                if (!ch.awaitPublished(reader, s, WAIT_NANOS)) {
                    return "timeout: reader " + reader + " waited for sequence " + s;
                }
            }
            Object expected = MixedValues.of(s);
            try {
                if (!MixedValues.equal(expected, value)) {
                    return "reader " + reader + " at " + s + ": expected " + MixedValues.describe(expected) + ", got "
                            + MixedValues.describe(value);
                }
            } finally {
                MixedValues.dispose(expected);
            }
            ch.release(reader, s);
        }
        return null;
    }

    /** @return null once every sequence was offered, else what went wrong */
    static String write(ShmChannel ch, long count) {
        for (long s = 0; s < count; s++) {
            Object value = MixedValues.of(s);
            try {
                while (!ch.offer(s, value)) {
                    if (!ch.awaitReleased(s, WAIT_NANOS)) {
                        return "timeout: the writer waited for a free slot for sequence " + s;
                    }
                }
            } finally {
                MixedValues.dispose(value);
            }
        }
        return null;
    }
}
