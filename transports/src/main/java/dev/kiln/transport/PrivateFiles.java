package dev.kiln.transport;

import com.sun.security.auth.module.UnixSystem;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * What keeps Kiln's files to their owner: directories of mode 0700 and files of mode 0600, whatever the
 * umask; the check that a directory Kiln is given is private (a real directory, not a link, of this
 * process's user, that no one else may enter); and removals that never follow a link and never touch
 * another user's file (root may delete anything, so the owner is checked rather than left to the kernel).
 *
 * <p>Stateless; thread-safe. Linux and other POSIX systems only.
 */
public final class PrivateFiles {

    /** Mode 0600, for files created with {@code Files.createFile}, {@code FileChannel.open} and the like. */
    public static final FileAttribute<Set<PosixFilePermission>> FILE =
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"));
    /** Mode 0700, for directories created with {@code Files.createDirectories} and the like. */
    public static final FileAttribute<Set<PosixFilePermission>> DIRECTORY =
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------"));

    private static final Set<PosixFilePermission> FILE_MODE = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> DIRECTORY_MODE = PosixFilePermissions.fromString("rwx------");
    private static final long UID = new UnixSystem().getUid();

    private PrivateFiles() {
    }

    /** @return this process's user id */
    public static long uid() {
        return UID;
    }

    /**
     * @param path a file or directory; a link is looked at, not followed
     * @return whether it belongs to this process's user
     * @throws IOException if its owner cannot be read (for example, it does not exist)
     */
    public static boolean ownedByThisUser(Path path) throws IOException {
        return ownerOf(path) == UID;
    }

    private static long ownerOf(Path path) throws IOException {
        return ((Number) Files.getAttribute(path, "unix:uid", LinkOption.NOFOLLOW_LINKS)).longValue();
    }

    /**
     * Says why a directory is not private, if it is not.
     *
     * @param directory the directory
     * @return null if it is a directory (not a link) of this process's user that only that user may read,
     *         write or enter; else what is wrong, for a message ("is a link", "belongs to user 1000, not to user
     *         0", "is open to other users (rwxr-xr-x)", ...)
     * @throws IOException if it cannot be looked at
     */
    public static String whyNotPrivate(Path directory) throws IOException {
        if (Files.isSymbolicLink(directory)) {
            return "is a symbolic link";
        }
        if (!Files.isDirectory(directory, LinkOption.NOFOLLOW_LINKS)) {
            return Files.exists(directory, LinkOption.NOFOLLOW_LINKS) ? "is not a directory" : "does not exist";
        }
        long owner = ownerOf(directory);
        if (owner != UID) {
            return "belongs to user " + owner + ", not to this process's user " + UID;
        }
        Set<PosixFilePermission> mode = Files.getPosixFilePermissions(directory, LinkOption.NOFOLLOW_LINKS);
        if (!DIRECTORY_MODE.containsAll(mode)) {
            return "is open to other users (" + PosixFilePermissions.toString(mode) + ")";
        }
        return null;
    }

    /**
     * Makes a directory that only this user may enter, with any missing parents (0700 each), or checks that an
     * existing one is so. A directory that is a link, belongs to another user, or grants anything to group or
     * others is refused rather than changed: Kiln keeps its Aeron log buffers (which hold the values of dynamic
     * calls) and its working files there, and cannot know who already looked inside or what was left there.
     *
     * @param directory the directory
     * @param what      what it is, for the message, e.g. "the Kiln run directory"
     * @param option    the option or flag that chooses it, for the message, e.g. "KilnOptions.runDirectory"
     * @return {@code directory}
     * @throws IllegalStateException if it exists and is not private; the message says what to do
     * @throws UncheckedIOException  if it cannot be made or looked at
     */
    public static Path ensurePrivateDirectory(Path directory, String what, String option) {
        String why;
        try {
            if (!Files.exists(directory, LinkOption.NOFOLLOW_LINKS)) {
                Files.createDirectories(directory, DIRECTORY);
            }
            why = whyNotPrivate(directory);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make " + what + " " + directory + " (" + e + "); set " + option
                    + " to a directory this user may create", e);
        }
        if (why == null) {
            return directory;
        }
        String fix = why.startsWith("is open")
                ? "make it private (chmod 700 " + directory + "), or set " + option + " to a directory only this user"
                        + " may enter; Kiln makes a missing one with mode 0700"
                : "remove it, or set " + option + " to another directory; Kiln makes a missing one with mode 0700";
        throw new IllegalStateException(what + " " + directory + " " + why + ": other users could read or plant "
                + "files there. " + Character.toUpperCase(fix.charAt(0)) + fix.substring(1));
    }

    /**
     * Restricts a tree this user made to its owner: directories 0700, regular files 0600. Links are neither
     * followed nor changed; entries of other users are left alone. For files that a library creates with the
     * umask's mode (Aeron's), once they exist.
     *
     * @param root a directory or file
     * @throws UncheckedIOException if a mode cannot be changed
     */
    public static void restrict(Path root) {
        try {
            Files.walkFileTree(root, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) throws IOException {
                    if (!ownedByThisUser(dir)) {
                        return FileVisitResult.SKIP_SUBTREE;
                    }
                    Files.setPosixFilePermissions(dir, DIRECTORY_MODE);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    if (attrs.isRegularFile() && ownedByThisUser(file)) {
                        Files.setPosixFilePermissions(file, FILE_MODE);
                    }
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFileFailed(Path file, IOException e) throws IOException {
                    if (e instanceof NoSuchFileException) {
                        return FileVisitResult.CONTINUE; // removed meanwhile
                    }
                    throw e;
                }
            });
        } catch (IOException e) {
            throw new UncheckedIOException("cannot restrict " + root + " to its owner: " + e, e);
        }
    }

    /**
     * Deletes a file of this user, never through a link; another user's file is left alone.
     *
     * @param file the file
     * @return whether it was deleted
     * @throws IOException if it cannot be deleted
     */
    public static boolean deleteOwn(Path file) throws IOException {
        try {
            if (!ownedByThisUser(file)) {
                return false;
            }
        } catch (NoSuchFileException e) {
            return false;
        }
        return Files.deleteIfExists(file);
    }

    /**
     * Deletes a directory of this user and everything in it, without following links (a link inside is
     * removed, not what it points to).
     *
     * @param root the directory
     * @throws IOException if it is another user's, or something in it cannot be deleted
     */
    public static void deleteTree(Path root) throws IOException {
        if (!ownedByThisUser(root)) {
            throw new IOException(root + " belongs to user " + ownerOf(root) + ", not to this process's user " + UID
                    + ": not removed");
        }
        Files.walkFileTree(root, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.deleteIfExists(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFileFailed(Path file, IOException e) throws IOException {
                if (e instanceof NoSuchFileException) {
                    return FileVisitResult.CONTINUE;
                }
                throw e;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path dir, IOException e) throws IOException {
                if (e != null && !(e instanceof NoSuchFileException)) {
                    throw e;
                }
                Files.deleteIfExists(dir);
                return FileVisitResult.CONTINUE;
            }
        });
    }
}
