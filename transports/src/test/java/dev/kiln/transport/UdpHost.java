package dev.kiln.transport;

import io.aeron.Aeron;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import org.agrona.concurrent.BackoffIdleStrategy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

/**
 * A simulated host: its own embedded media driver in its own directory, an Aeron client, and
 * UDP endpoints on 127.0.0.1. The driver runs its conductor, sender and receiver on one thread
 * that parks (1 us growing to 1 ms) when idle, and declares peers gone after
 * {@link #LIVENESS_NS}, so that tests of lost peers finish in seconds.
 */
final class UdpHost implements AutoCloseable {

    /** The drivers' image liveness and publication connection timeouts. */
    static final long LIVENESS_NS = TimeUnit.SECONDS.toNanos(2);

    private final String name;
    private final MediaDriver driver;
    private final Aeron aeron;
    private final List<Throwable> errors;
    private boolean closed;

    private UdpHost(String name, MediaDriver driver, Aeron aeron, List<Throwable> errors) {
        this.name = name;
        this.driver = driver;
        this.aeron = aeron;
        this.errors = errors;
    }

    /**
     * @param name      for messages
     * @param directory a fresh directory; the driver's files go in {@code directory/name}
     * @return the started host
     */
    static UdpHost start(String name, Path directory) {
        MediaDriver driver = MediaDriver.launchEmbedded(new MediaDriver.Context()
                .aeronDirectoryName(directory.resolve(name).toString())
                .threadingMode(ThreadingMode.SHARED)
                .sharedIdleStrategy(new BackoffIdleStrategy(1, 1, 1_000, 1_000_000))
                .termBufferSparseFile(true)
                .imageLivenessTimeoutNs(LIVENESS_NS)
                .publicationConnectionTimeoutNs(LIVENESS_NS)
                .publicationLingerTimeoutNs(TimeUnit.MILLISECONDS.toNanos(200))
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true));
        List<Throwable> errors = new CopyOnWriteArrayList<>();
        try {
            Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName())
                    .errorHandler(errors::add));
            return new UdpHost(name, driver, aeron, errors);
        } catch (RuntimeException e) {
            driver.close();
            throw e;
        }
    }

    /** @return a {@code 127.0.0.1:port} endpoint whose UDP port was free a moment ago */
    static String freeEndpoint() {
        try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            return "127.0.0.1:" + socket.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    Aeron aeron() {
        return aeron;
    }

    /** @return what the client's error handler received */
    List<Throwable> errors() {
        return errors;
    }

    /** Closes the client (its publications end their streams), then the driver. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            aeron.close();
        } finally {
            driver.close();
        }
    }

    @Override
    public String toString() {
        return "UdpHost(" + name + ")";
    }
}
