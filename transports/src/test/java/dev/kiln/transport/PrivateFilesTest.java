package dev.kiln.transport;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Private directories made and checked, trees restricted, and removals that follow no link and spare other users. */
class PrivateFilesTest {

    /** The user {@code nobody}, to own files of "another user" (only root may give files away). */
    static final int NOBODY = 65534;

    @TempDir
    Path tmp;

    static String mode(Path p) throws IOException {
        return PosixFilePermissions.toString(Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS));
    }

    static void giveToNobody(Path p) throws IOException {
        assumeTrue(PrivateFiles.uid() == 0, "only root can give a file to another user");
        Files.setAttribute(p, "unix:uid", NOBODY, LinkOption.NOFOLLOW_LINKS);
    }

    @Test
    void ensureMakesMissingDirectoriesAndTheirMissingParentsPrivate() throws IOException {
        Path dir = tmp.resolve("a").resolve("b");
        assertSame(dir, PrivateFiles.ensurePrivateDirectory(dir, "the run directory", "Opt.dir"));
        assertEquals("rwx------", mode(dir));
        assertEquals("rwx------", mode(tmp.resolve("a")));
        assertNull(PrivateFiles.whyNotPrivate(dir));
        // An existing private directory is accepted as it is.
        PrivateFiles.ensurePrivateDirectory(dir, "the run directory", "Opt.dir");
    }

    @Test
    void aDirectoryOpenToOthersIsRefusedWithTheFix() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("open"));
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> PrivateFiles.ensurePrivateDirectory(dir, "the Kiln run directory", "KilnOptions.runDirectory"));
        assertEquals("the Kiln run directory " + dir + " is open to other users (rwxr-xr-x): other users could read or"
                + " plant files there. Make it private (chmod 700 " + dir + "), or set KilnOptions.runDirectory to a"
                + " directory only this user may enter; Kiln makes a missing one with mode 0700", e.getMessage());
        assertEquals("rwxr-xr-x", mode(dir), "refused, not changed");
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx-w----"));
        assertEquals("is open to other users (rwx-w----)", PrivateFiles.whyNotPrivate(dir));
    }

    @Test
    void aLinkIsRefusedEvenToAPrivateDirectory() throws IOException {
        Path target = PrivateFiles.ensurePrivateDirectory(tmp.resolve("target"), "t", "o");
        Path link = Files.createSymbolicLink(tmp.resolve("link"), target);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> PrivateFiles.ensurePrivateDirectory(link, "the Kiln run directory", "KilnOptions.runDirectory"));
        assertTrue(e.getMessage().startsWith("the Kiln run directory " + link + " is a symbolic link: "), e.getMessage());
        assertTrue(e.getMessage().endsWith("Remove it, or set KilnOptions.runDirectory to another directory; Kiln makes"
                + " a missing one with mode 0700"), e.getMessage());
    }

    @Test
    void aFileIsNotADirectory() throws IOException {
        Path file = Files.writeString(tmp.resolve("file"), "x");
        assertEquals("is not a directory", PrivateFiles.whyNotPrivate(file));
        assertThrows(IllegalStateException.class, () -> PrivateFiles.ensurePrivateDirectory(file, "d", "o"));
    }

    @Test
    void anotherUsersDirectoryIsRefused() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("theirs"), PrivateFiles.DIRECTORY);
        giveToNobody(dir);
        assertEquals("belongs to user " + NOBODY + ", not to this process's user " + PrivateFiles.uid(),
                PrivateFiles.whyNotPrivate(dir));
        assertThrows(IllegalStateException.class, () -> PrivateFiles.ensurePrivateDirectory(dir, "d", "o"));
    }

    @Test
    void restrictClosesATreeButNeitherFollowsNorChangesLinks() throws IOException {
        Path root = Files.createDirectories(tmp.resolve("root/sub"));
        Files.setPosixFilePermissions(tmp.resolve("root"), PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxrwxrwx"));
        Path file = Files.writeString(root.resolve("log.buffer"), "x");
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-r--r--"));
        Path outside = Files.writeString(tmp.resolve("outside"), "y");
        Files.setPosixFilePermissions(outside, PosixFilePermissions.fromString("rw-r--r--"));
        Files.createSymbolicLink(root.resolve("link"), outside);

        PrivateFiles.restrict(tmp.resolve("root"));

        assertEquals("rwx------", mode(tmp.resolve("root")));
        assertEquals("rwx------", mode(root));
        assertEquals("rw-------", mode(file));
        assertEquals("rw-r--r--", mode(outside), "what a link points to is not touched");
    }

    @Test
    void deleteOwnSparesOtherUsersAndDeletesLinksNotTheirTargets() throws IOException {
        Path mine = Files.writeString(tmp.resolve("mine"), "x");
        Path target = Files.writeString(tmp.resolve("target"), "t");
        Path link = Files.createSymbolicLink(tmp.resolve("link"), target);
        assertTrue(PrivateFiles.deleteOwn(mine));
        assertTrue(PrivateFiles.deleteOwn(link));
        assertTrue(Files.exists(target), "the link went, not its target");
        assertFalse(PrivateFiles.deleteOwn(tmp.resolve("missing")));

        Path theirs = Files.writeString(tmp.resolve("theirs"), "x");
        giveToNobody(theirs);
        assertFalse(PrivateFiles.deleteOwn(theirs), "root could delete it, but it is not ours");
        assertTrue(Files.exists(theirs));
    }

    @Test
    void deleteTreeDeletesLinksInsideNotWhatTheyPointTo() throws IOException {
        Path outside = Files.createDirectories(tmp.resolve("outside"));
        Path precious = Files.writeString(outside.resolve("precious"), "keep");
        Path tree = Files.createDirectories(tmp.resolve("tree/a/b"));
        Files.writeString(tree.resolve("f"), "x");
        Files.createSymbolicLink(tmp.resolve("tree/a/link"), outside);

        PrivateFiles.deleteTree(tmp.resolve("tree"));

        assertFalse(Files.exists(tmp.resolve("tree"), LinkOption.NOFOLLOW_LINKS));
        assertEquals("keep", Files.readString(precious));
    }

    @Test
    void aMissingDirectoryThatCannotBeMadeSaysWhichOption() throws IOException {
        Path file = Files.writeString(tmp.resolve("file"), "x");
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> PrivateFiles.ensurePrivateDirectory(file.resolve("below"), "the Kiln run directory",
                        "KilnOptions.runDirectory"));
        assertTrue(e.getMessage().startsWith("cannot make the Kiln run directory " + file.resolve("below")),
                e.getMessage());
        assertTrue(e.getMessage().endsWith("set KilnOptions.runDirectory to a directory this user may create"),
                e.getMessage());
    }
}
