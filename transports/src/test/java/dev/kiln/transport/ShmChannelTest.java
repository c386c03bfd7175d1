package dev.kiln.transport;

import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.lang.foreign.MemorySegment;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import static dev.kiln.transport.Channel.NOT_READY;
import static dev.kiln.transport.InProcessChannelTest.joinOrFail;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Jupiter tests carry their own {@code @Timeout}: a class-level one would also sit on the jqwik property. */
class ShmChannelTest {

    /** How long a whole hammer run may take. */
    private static final long HAMMER_MS = 240_000;
    private static final long PID = ProcessHandle.current().pid();

    private Path dir;

    @BeforeEach
    void makeDirectory() throws IOException {
        dir = TempFiles.directory();
    }

    @AfterEach
    void removeDirectory() throws IOException {
        TempFiles.deleteTree(dir);
    }

    static ChannelSpec spec(int slots, int readers, long slotBytes) {
        return new ChannelSpec(3, 5, 1, IntStream.range(10, 10 + readers).boxed().toList(), slots, slotBytes,
                Transport.AUTO, "test");
    }

    private ShmChannel create(int slots, int readers, long slotBytes, boolean growth) throws IOException {
        return ShmChannel.create(spec(slots, readers, slotBytes), dir, "ch", MixedValues.codec(), growth, new Waker(),
                InProcessChannelTest.wakers(readers));
    }

    private List<String> files() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    @Timeout(60)
    void aReaderOfLikeTensorsGetsTheSameViewObjectPerSlotAndAllocatesNothing() throws IOException {
        try (ShmChannel ch = ShmChannel.create(spec(2, 1, 4096), dir, "views", new ValueCodec(), false, new Waker(),
                InProcessChannelTest.wakers(1))) {
            Tensor source = Tensor.of(new float[] {0, 0, 0, 0}, 2, 2);
            Tensor[] first = new Tensor[2];
            for (long seq = 0; seq < 6; seq++) {
                source.setFloat(0, seq);
                assertTrue(ch.offer(seq, source));
                Tensor view = (Tensor) ch.poll(0, seq);
                assertEquals(seq, view.getFloat(0), "the view shows this sequence's value");
                int slot = (int) (seq % 2);
                if (first[slot] == null) {
                    first[slot] = view;
                }
                assertSame(first[slot], view, "the same view object for the same slot, shape and type");
                ch.release(0, seq);
            }
            assertTrue(ch.offer(6, Tensor.of(new float[] {1, 2, 3}, 3)));
            Tensor other = (Tensor) ch.poll(0, 6);
            assertArrayEquals(new long[] {3}, other.shape(), "another shape decodes a new view");
            ch.release(0, 6);
            assertTrue(ch.offer(7, Tensor.of(new int[] {9, 9, 9, 9}, 2, 2)));
            assertEquals(DType.I32, ((Tensor) ch.poll(0, 7)).dtype(), "another type decodes a new view");
            ch.release(0, 7);

            com.sun.management.ThreadMXBean threads =
                    (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
            long seq = 8;
            for (int warm = 0; warm < 20_000; warm++, seq++) { // let the JIT settle
                assertTrue(ch.offer(seq, source));
                ch.poll(0, seq);
                ch.release(0, seq);
            }
            long before = threads.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < 10_000; i++, seq++) {
                ch.offer(seq, source);
                ch.poll(0, seq);
                ch.release(0, seq);
            }
            long perRound = (threads.getCurrentThreadAllocatedBytes() - before) / 10_000;
            assertTrue(perRound < 8, perRound + " bytes allocated per offer, poll and release of a like tensor");
        }
    }

    /** Minor page faults of this process so far, from {@code /proc/self/stat} (field 10). */
    private static long minorFaults() throws IOException {
        String stat = Files.readString(Path.of("/proc/self/stat"));
        String[] fields = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(fields[7]);
    }

    @Test
    @Timeout(60)
    void slotsArePrefaultedSoTheFirstCopyIntoThemTakesNoPageFaultPerPage() throws IOException {
        long bytes = 8L << 20; // 2048 pages
        Tensor t = Tensor.of(new long[(int) (bytes / 8)], bytes / 8);
        t.toLongArray(); // every page of the source touched before counting
        try (ShmChannel ch = ShmChannel.create(spec(1, 1, bytes + 4096), dir, "prefault", new ValueCodec(), false,
                new Waker(), InProcessChannelTest.wakers(1))) {
            long before = minorFaults();
            assertTrue(ch.offer(0, t));
            long faults = minorFaults() - before;
            // Without prefaulting the copy took one fault per 4 KiB page of the slot (2048 here); what is left
            // is the JVM's own background faults.
            assertTrue(faults < 512, faults + " minor faults during the first copy into an 8 MiB slot");
            assertEquals(bytes, ((Tensor) ch.poll(0, 0)).byteSize());
            ch.release(0, 0);
        }
    }

    @Test
    @Timeout(60)
    void checksItsArguments() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ShmChannel.create(
                spec(2, 3, 64), dir, "ch", new ValueCodec(), true, new Waker(), InProcessChannelTest.wakers(2)));
        assertEquals("channel c3 has 3 readers, got 2 wakers", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ShmChannel.create(
                spec(2, 1, 64), dir, "../x", new ValueCodec(), true, new Waker(), InProcessChannelTest.wakers(1)));
        assertEquals("channel name '../x' must be 1 to 100 of [A-Za-z0-9_-]", e.getMessage());
        assertEquals(List.of(), files(), "nothing created");
    }

    @Test
    @Timeout(60)
    void fileIsPrivateNamedByPidAndRemovedOnClose() throws IOException {
        ChannelSpec spec = spec(4, 2, 1000);
        ShmChannel ch = ShmChannel.create(spec, dir, "graph7-c3", new ValueCodec(), true, new Waker(),
                InProcessChannelTest.wakers(2));
        Path file = dir.toAbsolutePath().resolve("kiln-" + PID + "-graph7-c3.shm");
        assertEquals(file, ch.path());
        assertSame(spec, ch.spec());
        assertEquals("ShmChannel(c3, " + file + ", writer)", ch.toString());
        assertTrue(Files.exists(file));
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
        // header page + 3 counter strides rounded to a page + 4 slots of (64-byte header + 1024 bytes)
        assertEquals(4096 + 4096 + 4 * (64 + 1024), Files.size(file));
        ch.close();
        assertFalse(Files.exists(file));
        ch.close(); // idempotent
    }

    @Test
    @Timeout(60)
    void singleThreadProtocol() throws IOException {
        try (ShmChannel ch = create(2, 2, 64, true)) {
            assertSame(NOT_READY, ch.poll(0, 0), "nothing published yet");
            assertTrue(ch.offer(0, "v0"));
            assertTrue(ch.offer(1, "v1"));
            assertFalse(ch.offer(2, "v2"), "both slots hold values no reader released");
            assertSame(NOT_READY, ch.poll(0, 2), "a refused offer publishes nothing");

            assertEquals("v0", ch.poll(0, 0));
            assertEquals("v1", ch.poll(0, 1));
            ch.release(0, 0);
            assertFalse(ch.offer(2, "v2"), "reader 1 still holds sequence 0");
            assertEquals("v0", ch.poll(1, 0));
            ch.release(1, 0);
            assertTrue(ch.offer(2, "v2"), "every reader released sequence 0: its slot is free");
            assertFalse(ch.offer(3, "v3"), "sequence 1 is still held");

            assertEquals("v2", ch.poll(1, 2), "a reader may poll ahead of its release");
            ch.release(0, 1);
            ch.release(1, 1);
            assertTrue(ch.offer(3, "v3"));
            assertEquals("v2", ch.poll(0, 2));
            assertEquals("v3", ch.poll(0, 3));
            assertSame(NOT_READY, ch.poll(0, 4));
        }
    }

    @Test
    @Timeout(60)
    void tensorStaysInPlaceUntilReleased() throws IOException {
        try (ShmChannel ch = create(1, 1, 4096, true); Tensor t = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2)) {
            assertTrue(ch.offer(0, t));
            Tensor view = assertInstanceOf(Tensor.class, ch.poll(0, 0));
            assertFalse(view.ownsMemory(), "a view of the slot");
            for (int i = 0; i < 3; i++) {
                assertFalse(ch.offer(1, Tensor.of(new float[] {9}))); // refused: never written
                assertTrue(t.contentEquals(view), "read in place, not consumed by poll");
                assertTrue(t.contentEquals((Tensor) ch.poll(0, 0)));
            }
            ch.release(0, 0);
            assertTrue(ch.offer(1, "next"));
            assertEquals("next", ch.poll(0, 1));
        }
    }

    @Test
    @Timeout(60)
    void tensorBuiltInTheClaimedSlotIsPublishedWithoutACopy() throws IOException {
        try (ShmChannel ch = create(2, 1, 4096, true)) {
            for (long seq = 0; seq < 6; seq++) {
                MemorySegment slot = ch.claimTensor(seq, DType.F32, new long[] {3, 4});
                assertNotNull(slot, "slot of #" + seq + " is free");
                Tensor built = Tensor.view(slot, DType.F32, 3, 4);
                for (int i = 0; i < 12; i++) {
                    built.setFloat(i, seq * 100 + i);
                }
                assertTrue(ch.offer(seq, built));
                Tensor read = assertInstanceOf(Tensor.class, ch.poll(0, seq));
                assertEquals(slot.address(), read.data().address(), "the reader sees the very bytes the writer built");
                assertArrayEquals(new long[] {3, 4}, read.shape());
                for (int i = 0; i < 12; i++) {
                    assertEquals(seq * 100 + i, read.getFloat(i));
                }
                ch.release(0, seq);
            }
        }
    }

    @Test
    @Timeout(60)
    void claimRefusesABusySlotATensorTooLargeAndAReader() throws IOException {
        try (ShmChannel ch = create(1, 1, 4096, true)) {
            assertNull(ch.claimTensor(0, DType.F32, new long[] {2048}), "does not fit beside its header");
            assertNotNull(ch.claimTensor(0, DType.F32, new long[] {1000}));
            assertTrue(ch.offer(0, "taken"));
            assertNull(ch.claimTensor(1, DType.F32, new long[] {4}), "#0 not released yet");
            try (ShmChannel reader = ShmChannel.open(ch.spec(), ch.path(), new ValueCodec(), new Waker[1])) {
                assertNull(reader.claimTensor(1, DType.F32, new long[] {4}));
            }
            ch.release(0, 0);
            assertNotNull(ch.claimTensor(1, DType.F32, new long[] {4}));
        }
    }

    @Test
    @Timeout(60)
    void nullAndErrorsAreValues() throws IOException {
        RemoteError error = RemoteError.of("a", "m", 1, new IllegalStateException("boom"));
        try (ShmChannel ch = create(2, 1, 64, true)) {
            assertTrue(ch.offer(0, null));
            assertTrue(ch.offer(1, error));
            assertNull(ch.poll(0, 0));
            assertEquals(error, ch.poll(0, 1));
        }
    }

    @Test
    @Timeout(60)
    void releasingLaterSequencesFreesEarlierSlots() throws IOException {
        try (ShmChannel ch = create(2, 1, 64, true)) {
            assertTrue(ch.offer(0, 0L));
            assertTrue(ch.offer(1, 1L));
            ch.release(0, 1); // releases count: everything up to 1
            assertTrue(ch.offer(2, 2L));
            assertTrue(ch.offer(3, 3L));
            assertFalse(ch.offer(4, 4L));
        }
    }

    @Test
    @Timeout(60)
    void readersMayOpenTheFileSeparately() throws IOException {
        ChannelSpec spec = spec(2, 2, 64);
        Waker[] readerWakers = {null, new Waker()};
        try (ShmChannel writer = ShmChannel.create(spec, dir, "ch", MixedValues.codec(), true, new Waker(), readerWakers)) {
            ShmChannel reader = ShmChannel.open(spec, writer.path(), MixedValues.codec(), new Waker[] {new Waker(), null});
            try {
                assertEquals("ShmChannel(c3, " + writer.path() + ", reader)", reader.toString());
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> reader.offer(0, 1));
                assertEquals("channel c3 was opened by a reader; only the process that created it may offer", e.getMessage());
                assertThrows(IllegalStateException.class, () -> reader.awaitReleased(0, 1));
                for (long s = 0; s < 50; s++) {
                    Object value = MixedValues.of(s);
                    assertTrue(writer.offer(s, value));
                    assertTrue(MixedValues.equal(value, reader.poll(0, s)), "reader 0 in the opened mapping at " + s);
                    assertTrue(MixedValues.equal(value, writer.poll(1, s)), "reader 1 in the writer's mapping at " + s);
                    reader.release(0, s);
                    writer.release(1, s);
                    MixedValues.dispose(value);
                }
            } finally {
                reader.close();
            }
            assertEquals(1, files().size(), "only the writer removes files (the slots grew, so it is not the first)");
        }
    }

    @Test
    @Timeout(60)
    void openChecksTheFile() throws IOException {
        try (ShmChannel writer = create(2, 2, 64, true)) {
            IOException e = assertThrows(IOException.class,
                    () -> ShmChannel.open(spec(3, 2, 64), writer.path(), new ValueCodec(), new Waker[2]));
            assertEquals(writer.path() + " does not match channel c3: it has 2 slots, 2 readers, generation 0 from"
                    + " sequence 0, 8448 bytes; expected 3 slots, 2 readers, generation 0 from sequence 0", e.getMessage());
            Path other = dir.resolve("other.shm");
            Files.write(other, new byte[8192]);
            e = assertThrows(IOException.class, () -> ShmChannel.open(spec(2, 2, 64), other, new ValueCodec(), new Waker[2]));
            assertEquals(other.toAbsolutePath() + " is not the first file of a Kiln shared-memory channel"
                    + " (kiln-<pid>-<name>.shm)", e.getMessage());
            Path zeros = dir.resolve("kiln-1-zeros.shm");
            Files.write(zeros, new byte[8192]);
            e = assertThrows(IOException.class, () -> ShmChannel.open(spec(2, 2, 64), zeros, new ValueCodec(), new Waker[2]));
            assertEquals(zeros.toAbsolutePath() + " is not a Kiln channel file of version 1", e.getMessage());
        }
    }

    @Test
    @Timeout(60)
    void removeStaleRemovesFilesOfEndedProcesses() throws IOException, InterruptedException {
        Process ended = new ProcessBuilder(ProcessHandle.current().info().command().orElseThrow(), "-version")
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        try {
            assertTrue(ended.waitFor(60, TimeUnit.SECONDS), "java -version did not end");
        } finally {
            ended.destroyForcibly();
        }
        long dead = ended.pid();
        List<String> stale = List.of("kiln-" + dead + "-a.shm", "kiln-" + dead + "-a.2.shm");
        List<String> kept = List.of("kiln-" + PID + "-live.shm", "kiln-x-a.shm", "notes.txt", "kiln-" + dead + "-a.tmp");
        for (String name : Stream.concat(stale.stream(), kept.stream()).toList()) {
            Files.writeString(dir.resolve(name), "x");
        }
        if (PrivateFiles.uid() == 0) {
            // Root may delete anyone's file in /dev/shm: another user's is still not ours to remove.
            Path theirs = Files.writeString(dir.resolve("kiln-" + dead + "-theirs.shm"), "x");
            Files.setAttribute(theirs, "unix:uid", PrivateFilesTest.NOBODY, java.nio.file.LinkOption.NOFOLLOW_LINKS);
            kept = new ArrayList<>(kept);
            kept.add(theirs.getFileName().toString());
        }
        try (ShmChannel live = create(1, 1, 64, true)) {
            assertEquals(2, ShmChannel.removeStale(dir));
            List<String> expected = new ArrayList<>(kept);
            expected.add(live.path().getFileName().toString());
            assertEquals(expected.stream().sorted().toList(), files());
            assertEquals(0, ShmChannel.removeStale(dir));
        }
    }

    @Test
    @Timeout(60)
    void notEnoughSpaceSaysWhatToDo() throws IOException {
        long usable = Files.getFileStore(dir).getUsableSpace();
        long slotBytes = usable + (1L << 30);
        IOException e = assertThrows(IOException.class, () -> create(2, 1, slotBytes, true));
        long needed = 8192 + 2 * (64 + (slotBytes + 63) / 64 * 64);
        String message = e.getMessage();
        assertTrue(message.startsWith("not enough space for shared-memory channel c3 in " + dir.toAbsolutePath()
                + ": kiln-" + PID + "-ch.shm needs " + needed + " bytes (2 slots of "), message);
        assertTrue(message.endsWith(" are usable; lower bufferBytes or maxInflight, or put shared-memory files in"
                + " another directory"), message);
        assertEquals(List.of(), files(), "nothing created");
    }

    @Test
    @Timeout(60)
    void growthSwitchesEveryReaderInOrderAndDeletesDrainedFiles() throws IOException {
        try (ShmChannel ch = create(2, 3, 64, true)) {
            String base = "kiln-" + PID + "-ch";
            byte[] small = {1, 2, 3};
            byte[] big = new byte[3000];
            Arrays.fill(big, (byte) 7);
            byte[] bigger = new byte[50_000];
            Arrays.fill(bigger, (byte) 9);

            assertTrue(ch.offer(0, small));
            assertTrue(ch.offer(1, big), "grows: generation 1");
            assertEquals(List.of(base + ".1.shm", base + ".shm"), files());
            assertFalse(ch.offer(2, small), "no reader released sequence 0 of generation 0 yet");

            for (int r = 0; r < 3; r++) {
                assertArrayEquals(small, (byte[]) ch.poll(r, 0));
            }
            assertArrayEquals(big, (byte[]) ch.poll(0, 1), "reader 0 follows the resize marker");
            ch.release(0, 0);
            ch.release(0, 1);
            ch.release(1, 0);
            assertFalse(ch.offer(2, small), "reader 2 still holds sequence 0 in generation 0");
            ch.release(2, 0);
            assertTrue(ch.offer(2, small));
            assertFalse(ch.offer(3, bigger), "readers 1 and 2 have not released sequence 1 in generation 1");
            assertArrayEquals(big, (byte[]) ch.poll(1, 1));
            assertArrayEquals(big, (byte[]) ch.poll(2, 1));
            ch.release(1, 1);
            ch.release(2, 1);
            assertTrue(ch.offer(3, bigger), "grows again: generation 2; generation 0 is drained");
            assertEquals(List.of(base + ".1.shm", base + ".2.shm"), files());

            for (int r = 0; r < 3; r++) {
                assertArrayEquals(small, (byte[]) ch.poll(r, 2));
                assertArrayEquals(bigger, (byte[]) ch.poll(r, 3));
                ch.release(r, 3);
            }
            assertTrue(ch.offer(4, big), "fits generation 2");
            assertTrue(ch.offer(5, small));
            assertEquals(List.of(base + ".2.shm"), files(), "generation 1 is drained");
            for (int r = 0; r < 3; r++) {
                assertArrayEquals(big, (byte[]) ch.poll(r, 4));
                assertArrayEquals(small, (byte[]) ch.poll(r, 5));
            }
        }
        assertEquals(List.of(), files());
    }

    @Test
    @Timeout(60)
    void growthFollowedByAReaderInAnotherMapping() throws IOException {
        ChannelSpec spec = spec(2, 2, 64);
        try (ShmChannel writer = ShmChannel.create(spec, dir, "ch", MixedValues.codec(), true, new Waker(), new Waker[2]);
             ShmChannel reader = ShmChannel.open(spec, writer.path(), MixedValues.codec(), new Waker[2])) {
            for (long s = 0; s < 40; s++) {
                byte[] value = new byte[(int) (s * s * 50)];
                Arrays.fill(value, (byte) s);
                assertTrue(writer.offer(s, value), "offer " + s);
                for (int r = 0; r < 2; r++) {
                    assertArrayEquals(value, (byte[]) reader.poll(r, s), "reader " + r + " at " + s);
                    reader.release(r, s);
                }
            }
            assertEquals(1, files().size(), "drained generations are deleted: " + files());
        }
    }

    @Test
    @Timeout(60)
    void growthDisabledSaysWhatToChange() throws IOException {
        try (ShmChannel ch = create(2, 1, 100, false)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ch.offer(0, new byte[500]));
            assertEquals("channel c3: a value of 508 encoded bytes does not fit its slots of 128 bytes and slot growth is"
                    + " disabled; raise CompileOptions.bufferBytes to at least 508 or enable CompileOptions.slotGrowth", e.getMessage());
            assertSame(NOT_READY, ch.poll(0, 0), "nothing published");
            assertTrue(ch.offer(0, new byte[120]), "a value that fits may still be offered for the same sequence");
            assertEquals(120, ((byte[]) ch.poll(0, 0)).length);
            assertEquals(1, files().size());
        }
    }

    @Test
    @Timeout(60)
    void unregisteredValueIsRefusedAndNothingPublished() throws IOException {
        try (ShmChannel ch = create(2, 1, 64, true)) {
            assertThrows(IllegalArgumentException.class, () -> ch.offer(0, new ValueCodecTest.Unregistered(1)));
            assertSame(NOT_READY, ch.poll(0, 0));
            assertTrue(ch.offer(0, 1));
        }
    }

    @ParameterizedTest
    @Timeout(120)
    @ValueSource(ints = {4 << 10, 1 << 20, 64 << 20})
    void tensorPassesExactly(int bytes) throws IOException {
        ChannelSpec spec = spec(2, 1, 1 << 20);
        try (ShmChannel writer = ShmChannel.create(spec, dir, "t", new ValueCodec(), true, new Waker(), new Waker[1]);
             ShmChannel reader = ShmChannel.open(spec, writer.path(), new ValueCodec(), new Waker[1])) {
            for (long s = 0; s < 3; s++) {
                try (Tensor t = MixedValues.tensor(DType.F32, s, bytes / 4)) {
                    assertTrue(writer.offer(s, t));
                    Tensor view = assertInstanceOf(Tensor.class, reader.poll(0, s));
                    assertEquals(DType.F32, view.dtype());
                    assertArrayEquals(new long[] {bytes / 4}, view.shape());
                    assertEquals(-1, t.data().mismatch(view.data()), "every byte of sequence " + s);
                    assertEquals(0, view.data().address() % 64, "aligned");
                    reader.release(0, s);
                }
            }
        }
    }

    @Test
    @Timeout(60)
    void viewFailsCleanlyAfterClose() throws IOException {
        Tensor view;
        try (ShmChannel ch = create(1, 1, 4096, true); Tensor t = Tensor.of(new int[] {1, 2, 3})) {
            ch.offer(0, t);
            view = (Tensor) ch.poll(0, 0);
            assertEquals(2, view.getInt(1));
        }
        assertThrows(IllegalStateException.class, () -> view.getInt(1));
    }

    @Test
    @Timeout(60)
    void awaitsTimeOut() throws IOException {
        try (ShmChannel ch = create(1, 1, 64, true)) {
            assertFalse(ch.awaitPublished(0, 0, TimeUnit.MILLISECONDS.toNanos(20)));
            assertTrue(ch.awaitReleased(0, 0), "the first slot is free");
            assertTrue(ch.offer(0, 1));
            assertTrue(ch.awaitPublished(0, 0, 0), "already published");
            assertFalse(ch.awaitReleased(1, TimeUnit.MILLISECONDS.toNanos(20)));
            Thread.currentThread().interrupt();
            try {
                assertFalse(ch.awaitPublished(0, 1, TimeUnit.MINUTES.toNanos(5)), "an interrupt ends the wait");
                assertTrue(Thread.currentThread().isInterrupted(), "and stays set");
            } finally {
                Thread.interrupted();
            }
        }
    }

    @Test
    @Timeout(60)
    void awaitsWakeOnPeerProgress() throws IOException, InterruptedException {
        try (ShmChannel writer = create(1, 1, 64, true);
             ShmChannel reader = ShmChannel.open(spec(1, 1, 64), writer.path(), MixedValues.codec(), new Waker[1])) {
            AtomicReference<Object> seen = new AtomicReference<>();
            Thread r = new Thread(() -> {
                if (reader.awaitPublished(0, 0, TimeUnit.MINUTES.toNanos(5))) {
                    seen.set(reader.poll(0, 0));
                }
            }, "reader");
            r.setDaemon(true);
            r.start();
            Thread.sleep(50); // likely asleep by now; either way the wait must end with the value
            assertTrue(writer.offer(0, "hello"));
            joinOrFail(r);
            assertEquals("hello", seen.get());

            AtomicReference<Boolean> free = new AtomicReference<>();
            Thread w = new Thread(() -> free.set(writer.awaitReleased(1, TimeUnit.MINUTES.toNanos(5))), "writer");
            w.setDaemon(true);
            w.start();
            Thread.sleep(50);
            reader.release(0, 0);
            joinOrFail(w);
            assertEquals(Boolean.TRUE, free.get());
            assertTrue(writer.offer(1, "again"));
        }
    }

    @ParameterizedTest
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    @EnumSource(value = IdleMode.class, names = {"BACKOFF", "BLOCKING"})
    void writerAndThreeReadersWithWakers(IdleMode mode) throws Exception {
        hammer(4, 100_000, mode);
    }

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void writerAndThreeReadersWithFutexWaits() throws Exception {
        hammer(2, 50_000, null);
    }

    /**
     * A writer and three readers, each on its own thread. The values are {@link MixedValues}, so the slots grow
     * several times during the run. Each reader checks every value, and that it is unchanged just before release.
     *
     * @param mode how threads wait: a {@link KilnIdleStrategy} with wakers (every reader uses the writer's
     *             mapping, so that its releases signal the writer), or null for the futex awaits (readers 0 and
     *             1 use a second mapping of the file, as another process would)
     */
    private void hammer(int slots, long count, IdleMode mode) throws Exception {
        int readers = 3;
        ChannelSpec spec = spec(slots, readers, 4096);
        Waker writerWaker = new Waker();
        Waker[] wakers = InProcessChannelTest.wakers(readers);
        AtomicReference<String> failure = new AtomicReference<>();
        long[] received = new long[readers];
        try (ShmChannel writer = ShmChannel.create(spec, dir, "hammer", MixedValues.codec(), true, writerWaker, wakers);
             ShmChannel opened = ShmChannel.open(spec, writer.path(), MixedValues.codec(),
                     new Waker[readers])) {
            List<Thread> threads = new ArrayList<>();
            threads.add(new Thread(() -> {
                KilnIdleStrategy idle = mode == null ? null : new KilnIdleStrategy(mode, writerWaker);
                for (long s = 0; s < count && failure.get() == null; s++) {
                    Object value = MixedValues.of(s);
                    while (!writer.offer(s, value)) {
                        if (failure.get() != null) {
                            return;
                        }
                        if (idle == null) {
                            writer.awaitReleased(s, TimeUnit.MILLISECONDS.toNanos(100));
                        } else {
                            idle.idle(0);
                        }
                    }
                    if (idle != null) {
                        idle.idle(1);
                    }
                    MixedValues.dispose(value);
                }
            }, "writer"));
            for (int r = 0; r < readers; r++) {
                int reader = r;
                ShmChannel ch = mode == null && r < 2 ? opened : writer;
                threads.add(new Thread(() -> {
                    KilnIdleStrategy idle = mode == null ? null : new KilnIdleStrategy(mode, wakers[reader]);
                    for (long s = 0; s < count; s++) {
                        Object value;
                        while ((value = ch.poll(reader, s)) == NOT_READY) {
                            if (failure.get() != null) {
                                return;
                            }
                            if (idle == null) {
                                ch.awaitPublished(reader, s, TimeUnit.MILLISECONDS.toNanos(100));
                            } else {
                                idle.idle(0);
                            }
                        }
                        if (idle != null) {
                            idle.idle(1);
                        }
                        Object expected = MixedValues.of(s);
                        boolean ok = MixedValues.equal(expected, value);
                        if (ok && (s & 63) == 0) {
                            Thread.yield(); // let the writer run while this reader holds the slot
                        }
                        ok = ok && MixedValues.equal(expected, ch.poll(reader, s));
                        MixedValues.dispose(expected);
                        if (!ok) {
                            failure.compareAndSet(null, "reader " + reader + " at " + s + ": expected "
                                    + MixedValues.describe(MixedValues.of(s)) + ", got " + MixedValues.describe(value));
                            return;
                        }
                        ch.release(reader, s);
                        received[reader]++;
                    }
                }, "reader-" + r));
            }
            for (Thread t : threads) {
                t.setDaemon(true);
                t.start();
            }
            long deadline = System.currentTimeMillis() + HAMMER_MS;
            for (Thread t : threads) {
                t.join(Math.max(1, deadline - System.currentTimeMillis()));
            }
            if (threads.stream().anyMatch(Thread::isAlive)) {
                failure.compareAndSet(null, "threads did not finish: received " + Arrays.toString(received));
                for (Thread t : threads) {
                    t.join(10_000);
                }
            }
            assertNull(failure.get());
            for (int r = 0; r < readers; r++) {
                assertEquals(count, received[r], "reader " + r);
            }
        }
        assertEquals(List.of(), files());
    }

    /**
     * A single thread plays the writer and every reader in a random order, offering byte arrays of random
     * sizes into small slots so that the channel grows at random points; a model of the protocol predicts
     * each result.
     *
     * @param slots   slot count
     * @param readers reader count
     * @param steps   who moves next: 0 the writer, r + 1 reader r (modulo the participants); the step's
     *                value also sizes the writer's next value
     */
    @Property(tries = 200)
    void randomInterleavingFollowsTheModel(@ForAll @IntRange(min = 1, max = 4) int slots,
                                           @ForAll @IntRange(min = 1, max = 3) int readers,
                                           @ForAll @Size(max = 300) List<@IntRange(min = 0, max = 2000) Integer> steps)
            throws IOException {
        Path root = TempFiles.directory();
        try (ShmChannel ch = ShmChannel.create(spec(slots, readers, 64), root, "model", new ValueCodec(), true,
                new Waker(), new Waker[readers])) {
            List<byte[]> published = new ArrayList<>();
            long[] next = new long[readers];
            boolean[] holding = new boolean[readers];
            for (int step : steps) {
                int who = step % (readers + 1);
                if (who == 0) {
                    long seq = published.size();
                    boolean free = seq - Arrays.stream(next).min().orElseThrow() < slots;
                    byte[] value = new byte[step * step / 40];
                    Arrays.fill(value, (byte) seq);
                    assertEquals(free, ch.offer(seq, value), () -> "offer " + seq + ", readers at " + Arrays.toString(next));
                    if (free) {
                        published.add(value);
                    }
                } else {
                    int r = who - 1;
                    long seq = next[r];
                    Object got = ch.poll(r, seq);
                    if (seq < published.size()) {
                        assertArrayEquals(published.get((int) seq), (byte[]) got, () -> "reader " + r + " at " + seq);
                        if (holding[r]) {
                            ch.release(r, seq);
                            next[r]++;
                        }
                        holding[r] = !holding[r];
                    } else {
                        assertSame(NOT_READY, got, () -> "reader " + r + " at " + seq);
                    }
                }
            }
        } finally {
            try (Stream<Path> left = Files.list(root)) {
                assertEquals(List.of(), left.toList(), "the writer's close removes every generation");
            }
            TempFiles.deleteTree(root);
        }
    }

    @Test
    @Timeout(60)
    void growthFailureLeavesTheChannelUsable() throws IOException {
        try (ShmChannel ch = create(1, 1, 64, true)) {
            Files.delete(ch.path()); // the mapping stays valid
            Files.delete(dir); // but the next generation cannot be created
            UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> ch.offer(0, new byte[1000]));
            assertTrue(e.getMessage().startsWith("channel c3: cannot grow its slots to 4096 bytes for a value of 1008"
                    + " bytes: "), e.getMessage());
            assertSame(NOT_READY, ch.poll(0, 0));
            assertTrue(ch.offer(0, new byte[10]));
            assertEquals(10, ((byte[]) ch.poll(0, 0)).length);
        } catch (UncheckedIOException e) {
            fail("close must not fail on a file already gone", e);
        }
    }
}
