package dev.kiln;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * A driver JVM for crash tests: starts a {@link Kiln} that accepts workers (so that its media driver runs from the
 * start), prints {@code ready} and waits to be killed; it closes and exits by itself after two minutes.
 *
 * <p>Arguments: the run directory, the shared-memory directory.
 */
public final class CrashingDriver {

    private CrashingDriver() {
    }

    /**
     * @param args run directory, shared-memory directory
     * @throws InterruptedException if interrupted while it waits
     */
    public static void main(String[] args) throws InterruptedException {
        byte[] secret = new byte[32];
        Arrays.fill(secret, (byte) 'k');
        try (Kiln kiln = Kiln.local(KilnOptions.defaults().runDirectory(Path.of(args[0]))
                .shmDirectory(Path.of(args[1])).joinSecret(secret))) {
            System.out.println(kiln.joinEndpoint().isPresent() ? "ready" : "no media driver");
            System.out.flush();
            Thread.sleep(120_000);
        }
    }
}
