package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.cuda.CudaException;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.PrivateFiles;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

import static dev.kiln.transport.Channel.NOT_READY;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.GPU;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.MEMORY;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.awaitAndRead;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.expected;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.floats;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.spec;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The writer's process and the readers' are two simulated processes sharing one simulated machine of three GPUs with
 * peer access, which refuse what CUDA refuses (events recorded on another device's stream, handles opened in their
 * own process, memory freed while another process has it open). Ends are closed writer first, as the channel needs.
 */
@Timeout(60)
class CudaIpcChannelTest {

    private final SimulatedDeviceOps writerProcess = SimulatedDeviceOps.create(SimulatedGpus.of(3, MEMORY));
    private final SimulatedDeviceOps readerProcess = writerProcess.anotherProcess();
    private final List<Long> allocations = new ArrayList<>();
    private final ValueCodec codec = new ValueCodec();
    @TempDir
    Path dir;

    @AfterEach
    void freeSources() {
        allocations.forEach(writerProcess::free);
        readerProcess.close();
        writerProcess.close();
    }

    private CudaIpcChannel writer(ChannelSpec spec) throws IOException {
        return writer(spec, writerProcess, GPU);
    }

    private CudaIpcChannel writer(ChannelSpec spec, SimulatedDeviceOps ops, int device) throws IOException {
        return CudaIpcChannel.createWriter(spec, dir, "ipc", codec, ops, device, null, new Waker[spec.readers().size()]);
    }

    /** Closes the writer end first, then the readers, as the channel requires; null ends are skipped. */
    private static void close(CudaIpcChannel writer, CudaIpcChannel... readers) {
        writer.close();
        for (CudaIpcChannel r : readers) {
            if (r != null) {
                r.close();
            }
        }
    }

    private List<String> files() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(f -> f.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void readersInAnotherProcessGetTheExactBytesInTheirOwnSlots() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 2);
        long stream = readerProcess.createStream(1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r0 = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, stream, null);
        CudaIpcChannel r1 = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 1, 2, 0, null);
        try {
            DeviceTensor src = floats(writerProcess, allocations, 0, 0, 6);
            MemorySegment srcMemory = writerProcess.memory(src.pointer(), 24);
            List<Long> slots0 = new ArrayList<>();
            for (long seq = 0; seq < 6; seq++) {
                writerProcess.synchronizeStream(GPU, 0); // the host writes the source: the last copy from it has run
                srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, -seq);
                assertTrue(w.offer(seq, new DeviceTensor(GPU, src.pointer(), DType.F32, 0, 3, 2)));
                DeviceTensor a = (DeviceTensor) r0.poll(0, seq);
                DeviceTensor b = (DeviceTensor) r1.poll(1, seq);
                assertEquals(1, a.device());
                assertEquals(2, b.device());
                assertEquals(stream, a.stream());
                assertArrayEquals(new long[] {3, 2}, a.shape());
                float[] want = {-seq, 1, 2, 3, 4, 5};
                assertArrayEquals(want, awaitAndRead(readerProcess, a));
                assertArrayEquals(want, awaitAndRead(readerProcess, b));
                slots0.add(a.pointer());
                r0.release(0, seq);
                r1.release(1, seq);
            }
            assertNotEquals(slots0.get(0), slots0.get(1));
            assertEquals(slots0.get(0), slots0.get(2), "two slots, reused");
            assertEquals(2, writerProcess.openMappings(), "the writer mapped each reader's slots once");
        } finally {
            close(w, r0, r1);
            readerProcess.destroyStream(stream);
        }
    }

    @Test
    void offerReturnsFalseUntilEveryReaderHasAttachedAndReleased() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 1, 64, 1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = null;
        try {
            DeviceTensor src = floats(writerProcess, allocations, 0, 4, 4);
            assertFalse(w.offer(0, src), "no reader slots yet");
            assertFalse(w.isFree(0));
            assertFalse(w.awaitReleased(0, 1_000_000));
            r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null);
            assertTrue(w.awaitReleased(0, TimeUnit.SECONDS.toNanos(20)));
            assertTrue(w.isFree(0));
            assertTrue(w.offer(0, src));
            assertFalse(w.offer(1, src));
            assertArrayEquals(expected(4, 4), awaitAndRead(readerProcess, (DeviceTensor) r.poll(0, 0)));
            assertFalse(w.offer(1, src), "polled, not released");
            r.release(0, 0);
            assertTrue(w.offer(1, src));
        } finally {
            close(w, r);
        }
    }

    @Test
    void tooLargeTensorsAreRefusedAndErrorRecordsPassThrough() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 16, 1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null);
        try {
            DeviceTensor big = floats(writerProcess, allocations, 0, 0, 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.offer(0, big));
            assertTrue(e.getMessage().startsWith("channel c3 (CUDA_IPC): a F32[5] device tensor of 20 bytes does not"
                    + " fit its device slots of 16 bytes; raise CompileOptions.bufferBytes to at least 20"), e.getMessage());
            assertSame(NOT_READY, r.poll(0, 0));
            RemoteError error = new RemoteError("a", "f", 0, "java.lang.RuntimeException", null, "x".repeat(5000));
            assertTrue(w.offer(0, error));
            assertEquals(error, r.poll(0, 0));
            assertTrue(w.offer(1, null));
            assertNull(r.poll(0, 1));
        } finally {
            close(w, r);
        }
    }

    @Test
    void aTensorOnAnotherDeviceThanTheWritersIsRefusedAndNothingIsPublished() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null);
        try {
            DeviceTensor elsewhere = floats(writerProcess, allocations, 2, 0, 0, 4);
            assertEquals("channel c3 (CUDA_IPC) sends from gpu0, the writer's device, but the tensor is on gpu2: return"
                    + " tensors on the actor's own device (GpuContext.device())",
                    assertThrows(IllegalArgumentException.class, () -> w.offer(0, elsewhere)).getMessage());
            assertSame(NOT_READY, r.poll(0, 0));
            assertTrue(w.offer(0, floats(writerProcess, allocations, 0, 8, 4)), "the sequence can still be offered");
            assertArrayEquals(expected(8, 4), awaitAndRead(readerProcess, (DeviceTensor) r.poll(0, 0)));
        } finally {
            close(w, r);
        }
    }

    /**
     * A writer on gpu1 offering a tensor on stream 0 copies after the producer's kernel on gpu1's default stream (not
     * the calling thread's device's), and a reader on gpu1 with stream 0 waits on gpu1's default stream.
     */
    @Test
    void streamZeroIsTheDefaultStreamOfTheEndsDevice() throws IOException {
        assertEquals(0, writerProcess.currentDevice());
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        CudaIpcChannel w = writer(spec, writerProcess, 1);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null);
        try {
            DeviceTensor src = floats(writerProcess, allocations, 1, 0, 0, 4);
            MemorySegment srcMemory = writerProcess.memory(src.pointer(), 16);
            writerProcess.pause();
            writerProcess.enqueue(1, 0, () -> srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, 42));
            assertTrue(w.offer(0, src));
            DeviceTensor v = (DeviceTensor) r.poll(0, 0);
            assertEquals(1, v.device());
            assertEquals(0, v.stream());
            assertFalse(readerProcess.queryStream(1, 0), "the reader's default stream of gpu1 waits for the copy");
            writerProcess.resume();
            assertArrayEquals(new float[] {42, 1, 2, 3}, awaitAndRead(readerProcess, v));
            r.release(0, 0);
        } finally {
            close(w, r);
        }
    }

    /** The writer's copy into a slot waits for the reader's kernel on the slot's previous sequence. */
    @Test
    void theNextCopyIntoASlotWaitsForTheReadersRelease() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 1, 64, 1);
        long consumer = readerProcess.createStream(1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, consumer, null);
        try {
            DeviceTensor first = floats(writerProcess, allocations, 0, 10, 4);
            DeviceTensor second = floats(writerProcess, allocations, 0, 20, 4);
            float[] seenByKernel = new float[4];
            writerProcess.pause();
            assertTrue(w.offer(0, first));
            DeviceTensor v = (DeviceTensor) r.poll(0, 0);
            MemorySegment slot = readerProcess.memory(v.pointer(), 16);
            readerProcess.enqueue(1, consumer, () -> MemorySegment.copy(slot, ValueLayout.JAVA_FLOAT, 0, seenByKernel, 0, 4));
            r.release(0, 0);
            assertTrue(w.offer(1, second));
            writerProcess.resume();
            readerProcess.synchronizeStream(1, consumer);
            assertArrayEquals(expected(10, 4), seenByKernel);
            assertArrayEquals(expected(20, 4), awaitAndRead(readerProcess, (DeviceTensor) r.poll(0, 1)));
        } finally {
            close(w, r);
            readerProcess.destroyStream(consumer);
        }
    }

    @Test
    void aReaderInTheWritersProcessIsUsedWithoutOpeningHandles() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, writerProcess, 0, 0, 0, null);
        try {
            DeviceTensor src = floats(writerProcess, allocations, 0, 1, 4);
            assertTrue(w.offer(0, src));
            assertArrayEquals(expected(1, 4), awaitAndRead(writerProcess, (DeviceTensor) r.poll(0, 0)));
            assertEquals(0, writerProcess.openMappings());
        } finally {
            close(w, r);
        }
    }

    /**
     * A reader in the writer's process on another device: the writer copies into its slots across devices (peer
     * access) and each end records only its own events, on streams of its own device; the simulator refuses an event
     * recorded on another device's stream (cudaErrorInvalidResourceHandle), which the reader's release used to do.
     */
    @Test
    void aReaderInTheWritersProcessOnAnotherDeviceRecordsOnlyItsOwnEvents() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        long consumer = writerProcess.createStream(1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, writerProcess, 0, 1, consumer, null);
        try {
            for (long seq = 0; seq < 5; seq++) {
                assertTrue(w.offer(seq, floats(writerProcess, allocations, 0, seq, 4)));
                DeviceTensor v = (DeviceTensor) r.poll(0, seq);
                assertEquals(1, v.device());
                assertEquals(consumer, v.stream());
                assertArrayEquals(expected(seq, 4), awaitAndRead(writerProcess, v));
                r.release(0, seq);
            }
            assertEquals(0, writerProcess.openMappings());
        } finally {
            close(w, r);
            writerProcess.destroyStream(consumer);
        }
        assertEquals(0, writerProcess.liveEvents());
    }

    @Test
    void withoutPeerAccessAReaderOnAnotherDeviceCannotBeAttached() throws IOException {
        try (SimulatedDeviceOps noPeers = SimulatedDeviceOps.create(new SimulatedGpus(2, MEMORY, false));
             SimulatedDeviceOps otherProcess = noPeers.anotherProcess()) {
            ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
            CudaIpcChannel w = writer(spec, noPeers, 0);
            CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, otherProcess, 0, 1, 0, null);
            try {
                long p = noPeers.allocate(0, 16);
                DeviceTensor src = new DeviceTensor(0, p, DType.F32, 0, 4);
                CudaException e = assertThrows(CudaException.class, () -> w.offer(0, src));
                assertEquals("cudaErrorPeerAccessUnsupported", e.errorName());
                assertTrue(e.getMessage().startsWith("cudaIpcOpenMemHandle failed"), e.getMessage());
                assertSame(NOT_READY, r.poll(0, 0));
                assertEquals(0, noPeers.openMappings());
                noPeers.free(p);
            } finally {
                close(w, r);
            }
            assertEquals(0, otherProcess.allocatedBytes());
        }
    }

    /** A reader end frees its slots only after the writer end, which may still copy into them, has closed. */
    @Test
    void closingAReaderWaitsForTheWriterToClose() throws Exception {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null);
        assertTrue(w.offer(0, floats(writerProcess, allocations, 0, 0, 4)));
        assertArrayEquals(expected(0, 4), awaitAndRead(readerProcess, (DeviceTensor) r.poll(0, 0)));
        r.release(0, 0);
        long slots = readerProcess.allocatedBytes();
        assertEquals(2 * 256, slots);
        AtomicReference<Throwable> thrown = new AtomicReference<>();
        Thread closing = Thread.ofPlatform().start(() -> {
            try {
                r.close();
            } catch (Throwable t) {
                thrown.set(t);
            }
        });
        closing.join(300);
        assertTrue(closing.isAlive(), "the reader waits for the writer's end");
        assertEquals(slots, readerProcess.allocatedBytes(), "and keeps its slots meanwhile");
        w.close();
        closing.join(TimeUnit.SECONDS.toMillis(30));
        assertFalse(closing.isAlive());
        assertNull(thrown.get());
        assertEquals(0, readerProcess.allocatedBytes());
        assertEquals(0, readerProcess.liveEvents());
    }

    /** The writer has the reader's slots open until it closes: freeing them earlier is refused by the simulator. */
    @Test
    void theCloseOrderNeverFreesMemoryAnotherProcessHasOpen() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null);
        assertTrue(w.offer(0, floats(writerProcess, allocations, 0, 0, 4)));
        DeviceTensor v = (DeviceTensor) r.poll(0, 0);
        awaitAndRead(readerProcess, v);
        r.release(0, 0);
        IllegalStateException early = assertThrows(IllegalStateException.class, () -> readerProcess.free(v.pointer()));
        assertTrue(early.getMessage().contains("still has it open through an IPC handle"), early.getMessage());
        close(w, r);
        assertEquals(0, writerProcess.openMappings());
        assertEquals(0, readerProcess.allocatedBytes(), "the reader freed its slots without a complaint");
    }

    @Test
    void closeUnmapsFreesAndDeletesEveryFile() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 3, 64, 1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null);
        DeviceTensor src = floats(writerProcess, allocations, 0, 0, 4);
        assertTrue(w.offer(0, src));
        assertEquals(1, writerProcess.openMappings());
        String base = w.path().getFileName().toString().replace(".shm", "");
        assertEquals(List.of(base + ".r0.ipc", base + ".shm", base + ".w.ipc"), files(),
                "the channel's file, the reader's handles and the writer's");
        w.close();
        assertEquals(List.of(), files(), "the writer end removed every file; the reader still maps the channel's");
        r.close();
        r.close();
        assertEquals(0, writerProcess.openMappings());
        assertEquals(0, writerProcess.liveEvents());
        assertEquals(0, writerProcess.liveStreams());
        assertEquals(GpuSlots.ALIGN, writerProcess.allocatedBytes(), "only the writer's own tensor is left (16 B, rounded)");
        assertEquals(0, readerProcess.allocatedBytes());
        assertEquals(0, readerProcess.liveEvents());
    }

    private static long deadPid() throws IOException, InterruptedException {
        Process p = new ProcessBuilder("true").start();
        assertEquals(0, p.waitFor());
        return p.pid();
    }

    @Test
    void removeStaleRemovesTheHandleFilesOfDeadProcessesOnly() throws Exception {
        long deadPid = deadPid();
        String dead = "kiln-" + deadPid + "-x-c1.w.ipc";
        String deadWriting = "kiln-" + deadPid + "-x-c1.r0.ipc.tmp"; // it died while writing a handle file
        String live = "kiln-" + ProcessHandle.current().pid() + "-x-c1.w.ipc";
        String liveWriting = "kiln-" + ProcessHandle.current().pid() + "-x-c1.w.ipc.tmp";
        for (String name : List.of(dead, deadWriting, live, liveWriting, "kiln-notapid-x.r0.ipc")) {
            Files.write(dir.resolve(name), new byte[8]);
        }
        List<String> kept = new ArrayList<>(List.of(live, liveWriting, "kiln-notapid-x.r0.ipc"));
        if (PrivateFiles.uid() == 0) {
            // Root may delete anyone's file in /dev/shm: another user's is still not ours to remove.
            String theirs = "kiln-" + deadPid + "-theirs.w.ipc";
            Files.setAttribute(Files.write(dir.resolve(theirs), new byte[8]), "unix:uid", 65534, LinkOption.NOFOLLOW_LINKS);
            kept.add(theirs);
        }
        assertEquals(2, CudaIpcChannel.removeStale(dir));
        assertEquals(kept.stream().sorted().toList(), files());
    }
    /** The file named {@code <channel>.<suffix>} beside a channel's file, as the channel names its handle files. */
    private static Path sibling(Path channelFile, String suffix) {
        String name = channelFile.getFileName().toString();
        return channelFile.resolveSibling(name.substring(0, name.length() - ".shm".length()) + suffix);
    }

    /**
     * A handle file that names the reading process as its writer chooses no address there: the ids of an end of the
     * same process come from what that process exported, so a file that claims the process without its having
     * exported anything is refused, its raw pointer and event ids never used.
     */
    @Test
    void aHandleFileClaimingThisProcessChoosesNoAddress() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        CudaIpcChannel w = writer(spec);
        try {
            byte[] forged = new byte[112 + 2 * 72];
            MemorySegment m = MemorySegment.ofArray(forged);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, 0x3152504943504749L); // "IGPCIPR1"
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, 8, writerProcess.processId());
            m.set(ValueLayout.JAVA_INT_UNALIGNED, 16, GPU);
            m.set(ValueLayout.JAVA_INT_UNALIGNED, 20, 2);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, 24, GpuSlots.stride(64));
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, 32, 64);
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, 104, 0x7f00_dead_0000L); // slots where the forger wants them
            for (int slot = 0; slot < 2; slot++) {
                m.set(ValueLayout.JAVA_LONG_UNALIGNED, 112 + 72L * slot + 64, 0x5010 + 16L * slot);
            }
            Path readerFile = sibling(w.path(), ".r0.ipc");
            Files.write(readerFile, forged);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> w.isFree(0));
            assertEquals("channel c3: " + readerFile + " names this process (" + writerProcess.processId() + ") as its"
                    + " writer, but no end of this process exported reader 0's slots and released events there",
                    e.getMessage());

            Path writerFile = sibling(w.path(), ".w.ipc");
            byte[] claimed = Files.readAllBytes(writerFile);
            MemorySegment.ofArray(claimed).set(ValueLayout.JAVA_LONG_UNALIGNED, 8, readerProcess.processId());
            Files.write(writerFile, claimed);
            e = assertThrows(IllegalStateException.class,
                    () -> CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null));
            assertEquals("channel c3: " + writerFile + " names this process (" + readerProcess.processId() + ") as its"
                    + " writer, but no end of this process exported the writer's ready events there", e.getMessage());
        } finally {
            w.close();
        }
        assertEquals(0, readerProcess.allocatedBytes());
        assertEquals(0, readerProcess.liveEvents());
    }

    /**
     * Handle files are read no further than their size: one that is larger is refused as before, and a name that is
     * no regular file (a link to an endless device) is an I/O error, not a read that fills the heap; one of another
     * user than the channel's (made first, under a name anyone can work out) is not read. Handle files are written
     * mode 0600, as a new file, so that a link left at the temporary name writes nothing elsewhere.
     */
    @Test
    void handleFilesAreReadBoundedAndWrittenPrivately(@TempDir Path elsewhere) throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        String base = "kiln-" + ProcessHandle.current().pid() + "-ipc";
        Path victim = Files.writeString(elsewhere.resolve("victim"), "untouched");
        Files.createSymbolicLink(dir.resolve(base + ".w.ipc.tmp"), victim);
        CudaIpcChannel w = writer(spec);
        try {
            assertEquals("untouched", Files.readString(victim));
            assertEquals(PosixFilePermissions.fromString("rw-------"),
                    Files.getPosixFilePermissions(sibling(w.path(), ".w.ipc")));
            Path readerFile = sibling(w.path(), ".r0.ipc");
            Files.write(readerFile, new byte[1 << 20]);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> w.isFree(0));
            assertTrue(e.getMessage().endsWith("does not hold reader 0's handles for 2 slots of 64 bytes"),
                    e.getMessage());
            Path zero = Path.of("/dev/zero");
            if (Files.exists(zero)) {
                Files.delete(readerFile);
                Files.createSymbolicLink(readerFile, zero);
                UncheckedIOException u = assertThrows(UncheckedIOException.class, () -> w.isFree(0));
                assertEquals("channel c3: cannot read reader 0's handles", u.getMessage());
                assertEquals(readerFile + " is not a regular file", u.getCause().getMessage());
            }
            Files.deleteIfExists(readerFile);
            Files.write(readerFile, new byte[112 + 2 * 72]);
            UserPrincipal channelOwner = Files.getOwner(w.path());
            boolean chowned;
            try {
                UserPrincipal nobody = dir.getFileSystem().getUserPrincipalLookupService()
                        .lookupPrincipalByName("nobody");
                Files.setOwner(readerFile, nobody);
                chowned = !nobody.equals(channelOwner);
            } catch (IOException notPermitted) {
                chowned = false; // only a privileged test run, where the user exists, can make a file of another user
            }
            if (chowned) {
                UncheckedIOException u = assertThrows(UncheckedIOException.class, () -> w.isFree(0));
                assertEquals(readerFile + " belongs to nobody, not to " + channelOwner.getName() + ", who owns the"
                        + " channel's file " + w.path() + "; remove it if no channel of that user uses it",
                        u.getCause().getMessage());
            }
        } finally {
            w.close();
        }
    }

    /**
     * A header comes from the writer's process: one with an element type Kiln does not have, a negative dimension,
     * more than {@value GpuSlots#MAX_RANK} dimensions, or more bytes than a slot holds (also by overflow) is refused
     * with a message naming the channel and the sequence, so that no view reaches past the reader's slot.
     */
    @Test
    void aCorruptHeaderIsRefusedBeforeAViewReachesPastTheSlot(@TempDir Path other) throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 8, 64, 1);
        CudaIpcChannel w = writer(spec);
        // The channel's files again in another directory, with the writer's events but headers of the test's making.
        ShmChannel forger = ShmChannel.create(new ChannelSpec(spec.id(), spec.node(), spec.writer(), spec.readers(),
                spec.slots(), 1024, spec.transport(), spec.reason()), other, "ipc", codec, true, null, new Waker[1]);
        Path forgedWriterFile = sibling(forger.path(), ".w.ipc");
        Files.copy(sibling(w.path(), ".w.ipc"), forgedWriterFile);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, forger.path(), codec, readerProcess, 0, 1, 0, null);
        try {
            long f32 = DType.F32.ordinal();
            long[][] headers = {{99, 4}, {-1, 4}, {f32, -2, -8}, {f32, 1L << 40, 1L << 40}, {f32, 17}, new long[34]};
            String[] why = {
                "names element type 99, not one of the " + DType.values().length + " this Kiln has",
                "names element type -1, not one of the " + DType.values().length + " this Kiln has",
                "has dimension 0 of -2",
                "announces more than " + Long.MAX_VALUE + " bytes, a slot holds 64",
                "announces 68 bytes, a slot holds 64",
                "has 33 dimensions, more than 32"};
            for (int i = 0; i < headers.length; i++) {
                long seq = i;
                try (Tensor header = Tensor.of(headers[i], headers[i].length)) {
                    assertTrue(forger.offer(seq, header));
                }
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> r.poll(0, seq));
                assertEquals("channel c3 (CUDA_IPC): the writer's header of sequence " + seq + " " + why[i],
                        e.getMessage());
            }
        } finally {
            Files.delete(forgedWriterFile); // the reader frees its slots once its writer's file is gone
            r.close();
            forger.close();
            w.close();
        }
        assertEquals(0, readerProcess.allocatedBytes());
        assertEquals(0, readerProcess.liveEvents());
    }
}
