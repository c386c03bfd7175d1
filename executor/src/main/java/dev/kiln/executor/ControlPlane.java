package dev.kiln.executor;

import io.aeron.Aeron;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.SleepingMillisIdleStrategy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * The driver's side of the control plane to its worker JVMs: an embedded Aeron media driver
 * (its directory under the Kiln run directory), an Aeron client, and one thread that receives
 * every worker's messages. Workers are clients of this media driver and talk over
 * {@code aeron:ipc}, one stream pair per worker. Only control messages travel here (creating
 * actors, dynamic calls, shipping plans, starting and stopping graphs); executions touch only
 * the graphs' channels.
 *
 * <p>Started on the first worker JVM a runtime needs; closed with the runtime. Thread-safe.
 */
public final class ControlPlane implements AutoCloseable {

    /** The Aeron channel of every control stream. */
    public static final String CHANNEL = "aeron:ipc";
    /** Room for a dynamic call's arguments or result: an IPC message may be an eighth of a term. */
    private static final int TERM_LENGTH = 64 * 1024 * 1024;

    private final Path directory;
    private final MediaDriver driver;
    private final Aeron aeron;
    private final List<WorkerProcess> workers = new CopyOnWriteArrayList<>();
    private final Thread receiver;
    private volatile boolean closed;
    private int nextIndex;

    private ControlPlane(Path directory, MediaDriver driver, Aeron aeron) {
        this.directory = directory;
        this.driver = driver;
        this.aeron = aeron;
        this.receiver = Thread.ofPlatform().name("kiln-control").daemon(true).unstarted(this::receive);
        receiver.start();
    }

    /**
     * Starts the media driver and connects to it.
     *
     * @param runDirectory the Kiln run directory; the media driver's directory is made inside it
     * @param name         the runtime's name, unique in this JVM
     * @return the control plane
     * @throws UncheckedIOException if the directory cannot be made
     */
    public static ControlPlane start(Path runDirectory, String name) {
        Path dir = runDirectory.resolve("aeron-" + ProcessHandle.current().pid() + "-" + name);
        try {
            Files.createDirectories(runDirectory);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the Kiln run directory " + runDirectory
                    + "; set KilnOptions.runDirectory to a writable directory", e);
        }
        MediaDriver driver = MediaDriver.launchEmbedded(new MediaDriver.Context()
                .aeronDirectoryName(dir.toString())
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true)
                .threadingMode(ThreadingMode.SHARED)
                // Control traffic only: the driver's conductor need not react within microseconds.
                .sharedIdleStrategy(new SleepingMillisIdleStrategy(1))
                .ipcTermBufferLength(TERM_LENGTH)
                .termBufferSparseFile(true));
        try {
            Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()));
            return new ControlPlane(dir, driver, aeron);
        } catch (RuntimeException e) {
            driver.close();
            throw e;
        }
    }

    /** @return the media driver's directory, which workers connect to */
    public Path directory() {
        return Path.of(driver.aeronDirectoryName());
    }

    /** @return the Aeron client */
    Aeron aeron() {
        return aeron;
    }

    /**
     * Reserves the stream pair of a new worker.
     *
     * @return its index: it reads stream {@code 100 + 2 * index} and writes {@code 101 + 2 * index}
     */
    synchronized int reserveIndex() {
        if (closed) {
            throw new IllegalStateException("the control plane is closed");
        }
        return nextIndex++;
    }

    /** @param worker a worker whose streams are open, to poll from now on */
    void add(WorkerProcess worker) {
        workers.add(worker);
    }

    /** @param worker a worker that ended */
    void remove(WorkerProcess worker) {
        workers.remove(worker);
    }

    private void receive() {
        // Sleeps up to 1 ms when idle: a dynamic call to a worker actor waits at most that for its reply.
        BackoffIdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
                TimeUnit.MILLISECONDS.toNanos(1));
        while (!closed) {
            int work = 0;
            for (WorkerProcess w : workers) {
                try {
                    work += w.poll();
                } catch (RuntimeException e) {
                    w.protocolError(e);
                }
            }
            idle.idle(work);
        }
    }

    /** Stops receiving, closes the client and the media driver (which deletes its directory). Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        try {
            receiver.join(1_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        aeron.close();
        driver.close();
    }

    @Override
    public String toString() {
        return "ControlPlane(" + directory + ")";
    }
}
