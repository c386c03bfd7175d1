package dev.kiln.executor;

import dev.kiln.transport.PrivateFiles;
import io.aeron.CncFileDescriptor;
import io.aeron.CommonContext;
import io.aeron.driver.MediaDriver;
import io.aeron.exceptions.DriverTimeoutException;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The Aeron directories of Kiln's embedded media drivers, {@code <run directory>/aeron-<pid>-<label>}: made where
 * no other user can reach them, and removed once their media driver is dead.
 *
 * <p>Aeron deletes and recreates a media driver's directory when it starts, and creates its files (the CnC file,
 * the log buffers that carry every message, dynamic calls' arguments included) with the process's umask: under
 * umask 022 they are world-readable. So the run directory around them is made (or must already be) mode 0700 and
 * this user's ({@link PrivateFiles#ensurePrivateDirectory}); once the driver has started, its directory and the
 * files in it are restricted to 0700 and 0600 too. Log buffers Aeron creates later keep the umask's mode, inside
 * directories no other user may enter.
 *
 * <p>A media driver that crashed (its JVM was killed) leaves its directory, about 50 MB of log buffers and CnC
 * file, and Aeron itself never removes it. {@link #removeStale} does, using Aeron's own liveness check: the CnC
 * file's driver heartbeat, older than Aeron's driver timeout.
 *
 * <p>Stateless; thread-safe.
 */
public final class AeronDirectories {

    /** {@code aeron-<pid>-<label>}: the process that made it, and what it is for ({@code aeron-worker-<pid>-} before). */
    private static final Pattern NAME = Pattern.compile("aeron-(?:worker-)?(\\d{1,18})-[A-Za-z0-9_.-]{1,100}");
    private static final System.Logger LOG = System.getLogger("dev.kiln");

    private AeronDirectories() {
    }

    /**
     * Launches an embedded media driver in {@code <runDirectory>/aeron-<this pid>-<label>}, after making the run
     * directory private (or checking that it is), and restricts what the driver created to its owner. The driver
     * deletes the directory when it closes ({@code dirDeleteOnShutdown}).
     *
     * @param runDirectory the Kiln run directory
     * @param option       the option or flag that chose it, for messages ({@code KilnOptions.runDirectory})
     * @param label        what the driver is for, unique in this process (a runtime's or worker's name); characters
     *                     other than letters, digits, {@code _}, {@code .} and {@code -} become {@code _}
     * @param context      the driver's settings; its directory name and deletion settings are set here
     * @return the running media driver
     * @throws IllegalStateException        if the run directory is not private, or the JVM lacks the flag Agrona needs
     *                                      (the message says what to do)
     * @throws java.io.UncheckedIOException if it cannot be made
     */
    public static MediaDriver launch(Path runDirectory, String option, String label, MediaDriver.Context context) {
        JvmFlags.requireAeron("the Aeron media driver of " + label + " (for worker JVMs and workers from other hosts)");
        PrivateFiles.ensurePrivateDirectory(runDirectory, "the Kiln run directory", option);
        String safe = label.replaceAll("[^A-Za-z0-9_.-]", "_");
        Path dir = runDirectory.resolve("aeron-" + ProcessHandle.current().pid() + "-"
                + safe.substring(0, Math.min(safe.length(), 100)));
        MediaDriver driver = MediaDriver.launchEmbedded(context.aeronDirectoryName(dir.toString())
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true));
        try {
            PrivateFiles.restrict(dir);
        } catch (RuntimeException e) {
            driver.close();
            throw e;
        }
        return driver;
    }

    /**
     * Removes the Aeron directories of dead media drivers from a run directory: those named
     * {@code aeron-<pid>-<label>}, of this user and not links, whose process no longer runs and whose CnC file
     * says the driver is not active (its heartbeat is older than Aeron's driver timeout,
     * {@value CommonContext#DEFAULT_DRIVER_TIMEOUT_MS} ms, or it has no CnC file and has not changed for as long).
     * Both must hold: the process id alone could belong to another pid namespace sharing the directory, and a
     * stopped driver's heartbeat is old too. A run directory that is missing or not private is left alone.
     *
     * @param runDirectory the Kiln run directory
     * @return how many directories were removed
     */
    public static int removeStale(Path runDirectory) {
        return removeStale(runDirectory, CommonContext.DEFAULT_DRIVER_TIMEOUT_MS);
    }

    /**
     * {@link #removeStale(Path)} with another driver timeout.
     *
     * @param runDirectory    the Kiln run directory
     * @param driverTimeoutMs how old a heartbeat (or a directory without a CnC file) must be for a dead driver's
     * @return how many directories were removed
     */
    static int removeStale(Path runDirectory, long driverTimeoutMs) {
        int removed = 0;
        try {
            if (!Files.exists(runDirectory, LinkOption.NOFOLLOW_LINKS) || PrivateFiles.whyNotPrivate(runDirectory) != null) {
                return 0;
            }
            try (DirectoryStream<Path> dirs = Files.newDirectoryStream(runDirectory, "aeron-*")) {
                for (Path dir : dirs) {
                    if (isStale(dir, driverTimeoutMs)) {
                        PrivateFiles.deleteTree(dir);
                        removed++;
                        LOG.log(System.Logger.Level.INFO, () -> "removed " + dir + ", the Aeron directory of a media "
                                + "driver that died without closing");
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            LOG.log(System.Logger.Level.WARNING, () -> "cannot remove the Aeron directories of dead media drivers in "
                    + runDirectory + ": " + e);
        }
        return removed;
    }

    private static boolean isStale(Path dir, long driverTimeoutMs) throws IOException {
        Matcher m = NAME.matcher(dir.getFileName().toString());
        if (!m.matches() || !Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS) || !PrivateFiles.ownedByThisUser(dir)
                || ProcessHandle.of(Long.parseLong(m.group(1))).map(ProcessHandle::isAlive).orElse(false)) {
            return false;
        }
        Path cnc = dir.resolve(CncFileDescriptor.CNC_FILE);
        try {
            if (!Files.isRegularFile(cnc, LinkOption.NOFOLLOW_LINKS)) {
                // Crashed before it made its CnC file, or is about to make it: only an old directory is dead.
                return System.currentTimeMillis() - Files.getLastModifiedTime(dir, LinkOption.NOFOLLOW_LINKS).toMillis()
                        > driverTimeoutMs;
            }
            if (!PrivateFiles.ownedByThisUser(cnc)) {
                return false;
            }
            return !CommonContext.isDriverActive(dir.toFile(), driverTimeoutMs, message -> { });
        } catch (NoSuchFileException e) {
            return false; // removed meanwhile
        } catch (DriverTimeoutException e) {
            return true; // a CnC file that stayed uninitialised for the timeout: the driver died while starting
        } catch (RuntimeException e) {
            return false; // another Aeron version's file, or one Aeron cannot read: not ours to judge
        }
    }
}
