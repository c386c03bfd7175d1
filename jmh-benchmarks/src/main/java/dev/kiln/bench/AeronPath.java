package dev.kiln.bench;

import dev.kiln.compiler.IdleMode;
import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.logbuffer.FragmentHandler;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.BusySpinIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.SleepingIdleStrategy;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The cross-process floor: raw Aeron IPC ping-pong between this JVM and a second JVM
 * ({@link AeronPong}) that this path starts with the same JVM flags and class path. An
 * embedded media driver (shared threading mode, its conductor sleeping 1 ms when idle: it is
 * not on the IPC data path) owns a fresh directory under {@code /dev/shm}. The JMH thread
 * offers an 8-byte input on stream {@value #PING}; the other JVM runs {@code Stage.step} on it
 * and offers the result on stream {@value #PONG}. Only {@link Scenario#SINGLE} (one hop out,
 * one back): the figure Kiln's cross-process transport will be compared with.
 */
final class AeronPath extends Path {

    /** Both streams are IPC: shared-memory log buffers mapped by both JVMs. */
    static final String CHANNEL = "aeron:ipc";
    /** Stream of inputs, this JVM to the other. */
    static final int PING = 1001;
    /** Stream of results, the other JVM to this. */
    static final int PONG = 1002;
    /** The input that tells the other JVM to exit. */
    static final long STOP = -1;
    private static final long CONNECT_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(60);

    private final MediaDriver driver;
    private final Aeron aeron;
    private final ExclusivePublication ping;
    private final Subscription pong;
    private final Process other;
    private final UnsafeBuffer out = new UnsafeBuffer(ByteBuffer.allocateDirect(Long.BYTES));
    private final IdleStrategy waiting;
    private final FragmentHandler onPong = (buffer, offset, length, header) -> received(buffer.getLong(offset));
    private long value;
    private boolean arrived;

    AeronPath(Scenario scenario, IdleMode idle, int window) {
        super(scenario, idle, window);
        if (scenario != Scenario.SINGLE) {
            throw new IllegalArgumentException("the Aeron ping-pong runs SINGLE only, got " + scenario);
        }
        this.waiting = idleStrategy(idle);
        String dir = new File(new File("/dev/shm").isDirectory() ? "/dev/shm" : System.getProperty("java.io.tmpdir"),
                "kiln-bench-aeron-" + ProcessHandle.current().pid()).getPath();
        MediaDriver.Context driverContext = new MediaDriver.Context()
                .aeronDirectoryName(dir)
                .threadingMode(ThreadingMode.SHARED)
                .sharedIdleStrategy(new SleepingMillisIdleStrategy(1))
                .ipcTermBufferLength(1 << 20)
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true);
        this.driver = MediaDriver.launchEmbedded(driverContext);
        Aeron.Context clientContext = new Aeron.Context();
        clientContext.aeronDirectoryName(driver.aeronDirectoryName());
        this.aeron = Aeron.connect(clientContext);
        this.ping = aeron.addExclusivePublication(CHANNEL, PING);
        this.pong = aeron.addSubscription(CHANNEL, PONG);
        this.other = startOther(driver.aeronDirectoryName(), idle);
        long deadline = System.nanoTime() + CONNECT_TIMEOUT_NS;
        while (!ping.isConnected() || !pong.isConnected()) {
            if (!other.isAlive() || System.nanoTime() - deadline > 0) {
                close();
                throw new IllegalStateException("the Aeron pong JVM did not connect within 60 s"
                        + (other.isAlive() ? "" : "; it exited with " + other.exitValue()));
            }
            Thread.onSpinWait();
        }
    }

    static IdleStrategy idleStrategy(IdleMode idle) {
        return switch (idle) {
            case SPIN -> new BusySpinIdleStrategy();
            case BACKOFF -> new BackoffIdleStrategy();
            case BLOCKING -> new SleepingIdleStrategy();
        };
    }

    private static Process startOther(String dir, IdleMode idle) {
        List<String> command = new ArrayList<>();
        command.add(new File(System.getProperty("java.home"), "bin/java").getPath());
        command.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        command.add("-cp");
        command.add(System.getProperty("java.class.path"));
        command.add(AeronPong.class.getName());
        command.add(dir);
        command.add(idle.name());
        try {
            return new ProcessBuilder(command).inheritIO().start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot start the Aeron pong JVM: " + command, e);
        }
    }

    private void received(long v) {
        value = v;
        arrived = true;
    }

    @Override
    void submit(long x) {
        send(x);
    }

    private void send(long x) {
        out.putLong(0, x);
        long result;
        while ((result = ping.offer(out, 0, Long.BYTES)) < 0) {
            if (result == Publication.CLOSED || result == Publication.NOT_CONNECTED || result == Publication.MAX_POSITION_EXCEEDED) {
                throw new IllegalStateException("Aeron ping publication: offer returned " + result);
            }
            waiting.idle();
        }
        waiting.reset();
    }

    @Override
    long next() {
        arrived = false;
        while (!arrived) {
            waiting.idle(pong.poll(onPong, 1));
        }
        waiting.reset();
        return value;
    }

    @Override
    public void close() {
        try {
            if (other.isAlive() && ping.isConnected()) {
                send(STOP);
            }
            if (!other.waitFor(10, TimeUnit.SECONDS)) {
                other.destroyForcibly();
            }
        } catch (InterruptedException e) {
            other.destroyForcibly();
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            other.destroyForcibly();
        } finally {
            aeron.close();
            driver.close();
            super.close();
        }
    }
}
