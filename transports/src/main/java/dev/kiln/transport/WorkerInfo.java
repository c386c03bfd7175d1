package dev.kiln.transport;

import dev.kiln.transport.control.MessageHeaderEncoder;
import dev.kiln.transport.control.WorkerInfoDecoder;
import dev.kiln.transport.control.WorkerInfoEncoder;
import org.agrona.ExpandableArrayBuffer;
import org.agrona.concurrent.UnsafeBuffer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;

/**
 * What a worker advertises when it joins a driver: where it runs and what it offers, so that the
 * driver can place actors on it. Immutable, hence thread-safe. {@link #encode()} gives stable bytes
 * (SBE, labels in key order), which {@link JoinHandshake} authenticates.
 *
 * @param hostName     the worker's host name, 1 to {@value #MAX_STRING_BYTES} bytes of UTF-8
 * @param labels       placement labels, e.g. {@code zone=a}; keys 1 to {@value #MAX_STRING_BYTES} bytes, values up
 *                     to that; at most {@value #MAX_LABELS}; copied into an unmodifiable map sorted by key
 * @param cores        CPU cores the worker offers, >= 1
 * @param gpus         the worker's GPUs (index in this list = device ordinal in the worker's JVM): identity, memory and
 *                     peer access; empty for a worker without GPUs; at most {@value #MAX_GPUS}, each UUID once (a JVM
 *                     sees a device at one ordinal). Read without creating a CUDA context; free memory is read on
 *                     each actor's device when the actor starts
 */
public record WorkerInfo(String hostName, Map<String, String> labels, int cores, List<Gpu> gpus) {

    /** Longest host name, label key or label value, in UTF-8 bytes. */
    public static final int MAX_STRING_BYTES = 255;
    /** Most labels a worker may advertise. */
    public static final int MAX_LABELS = 64;
    /** Most GPUs a worker may advertise. */
    public static final int MAX_GPUS = 64;

    /**
     * One GPU of a worker.
     *
     * @param uuid       the device's UUID ({@code GPU-...}), 1 to {@value #MAX_STRING_BYTES} bytes: the same GPU has the
     *                   same UUID in every JVM of its host, whatever its index there
     * @param totalBytes its memory, in bytes, >= 0
     * @param peers      bit {@code j} set when this device has peer access to device {@code j} of the same worker
     */
    public record Gpu(String uuid, long totalBytes, long peers) {
        /**
         * Checks the values.
         *
         * @throws IllegalArgumentException on a blank or too long UUID or negative memory
         */
        public Gpu {
            checkString(uuid, "GPU uuid", false);
            if (totalBytes < 0) {
                throw new IllegalArgumentException("GPU memory must be >= 0 bytes, got " + totalBytes);
            }
        }
    }

    /**
     * Checks and copies the values.
     *
     * @throws IllegalArgumentException naming the value out of range
     * @throws NullPointerException     if a component, label key or value, or GPU figure is null
     */
    public WorkerInfo {
        checkString(hostName, "hostName", false);
        if (labels.size() > MAX_LABELS) {
            throw new IllegalArgumentException("at most " + MAX_LABELS + " labels, got " + labels.size());
        }
        TreeMap<String, String> sorted = new TreeMap<>();
        for (Map.Entry<String, String> e : labels.entrySet()) {
            checkString(e.getKey(), "label key", false);
            checkString(e.getValue(), "label " + e.getKey(), true);
            sorted.put(e.getKey(), e.getValue());
        }
        labels = Collections.unmodifiableSortedMap(sorted);
        if (cores < 1) {
            throw new IllegalArgumentException("cores must be >= 1, got " + cores);
        }
        gpus = List.copyOf(gpus);
        if (gpus.size() > MAX_GPUS) {
            throw new IllegalArgumentException("at most " + MAX_GPUS + " GPUs, got " + gpus.size());
        }
        // The driver takes a UUID for one device: two ordinals with one UUID would join a device to itself.
        Set<String> uuids = new HashSet<>();
        for (int d = 0; d < gpus.size(); d++) {
            if (!uuids.add(gpus.get(d).uuid())) {
                throw new IllegalArgumentException("GPU " + d + " has the UUID " + gpus.get(d).uuid() + " of an earlier"
                        + " GPU: a worker lists each device once");
            }
        }
    }

    private static void checkString(String s, String name, boolean mayBeEmpty) {
        Objects.requireNonNull(s, name);
        int bytes = s.getBytes(StandardCharsets.UTF_8).length;
        if ((!mayBeEmpty && bytes == 0) || bytes > MAX_STRING_BYTES) {
            throw new IllegalArgumentException(name + " must have " + (mayBeEmpty ? 0 : 1) + " to " + MAX_STRING_BYTES
                    + " bytes of UTF-8, has " + bytes);
        }
    }

    /**
     * @param device a device ordinal of this worker
     * @param peer   another
     * @return whether {@code device} has peer access to {@code peer}
     */
    public boolean peerAccess(int device, int peer) {
        return device != peer && device < gpus.size() && peer < gpus.size() && (gpus.get(device).peers() & (1L << peer)) != 0;
    }

    /**
     * The stable encoding: the SBE message {@code WorkerInfo} of {@code kiln-control.xml} with its header (cores,
     * the GPUs with UUID, memory and peer bits in device order, the labels in key order, the host name). Equal
     * infos give equal bytes on every JVM.
     *
     * @return the bytes, new on each call
     */
    public byte[] encode() {
        ExpandableArrayBuffer buffer = new ExpandableArrayBuffer(256);
        WorkerInfoEncoder e = new WorkerInfoEncoder().wrapAndApplyHeader(buffer, 0, new MessageHeaderEncoder());
        e.cores(cores);
        WorkerInfoEncoder.GpusEncoder g = e.gpusCount(gpus.size());
        for (Gpu gpu : gpus) {
            byte[] uuid = utf8(gpu.uuid());
            g.next().totalBytes(gpu.totalBytes()).peers(gpu.peers()).putUuid(uuid, 0, uuid.length);
        }
        WorkerInfoEncoder.LabelsEncoder l = e.labelsCount(labels.size());
        for (Map.Entry<String, String> label : labels.entrySet()) {
            byte[] key = utf8(label.getKey());
            byte[] value = utf8(label.getValue());
            l.next().putKey(key, 0, key.length).putValue(value, 0, value.length);
        }
        byte[] host = utf8(hostName);
        e.putHostName(host, 0, host.length);
        byte[] out = new byte[Sbe.HEADER_LENGTH + e.encodedLength()];
        buffer.getBytes(0, out);
        return out;
    }

    /**
     * Reads what {@link #encode()} wrote, as received from the network: the header, every count, length and
     * value is checked before it is used.
     *
     * @param bytes exactly one encoded info
     * @return the info
     * @throws IllegalArgumentException if the bytes are not exactly one valid encoded info
     */
    public static WorkerInfo decode(byte[] bytes) {
        UnsafeBuffer buffer = new UnsafeBuffer(bytes);
        int end = bytes.length;
        try {
            if (Sbe.templateId(buffer, 0, end) != WorkerInfoDecoder.TEMPLATE_ID) {
                throw new IllegalArgumentException("not an encoded WorkerInfo (template "
                        + Sbe.templateId(buffer, 0, end) + ")");
            }
            Sbe.checkBlock(buffer, 0, end, WorkerInfoDecoder.BLOCK_LENGTH, "WorkerInfo");
            WorkerInfoDecoder d = new WorkerInfoDecoder().wrap(buffer, Sbe.HEADER_LENGTH, WorkerInfoDecoder.BLOCK_LENGTH,
                    WorkerInfoDecoder.SCHEMA_VERSION);
            int cores = d.cores();
            WorkerInfoDecoder.GpusDecoder g = d.gpus();
            Sbe.checkGroup(g.actingBlockLength(), WorkerInfoDecoder.GpusDecoder.sbeBlockLength(), "GPUs");
            if (g.count() > MAX_GPUS) {
                throw new IllegalArgumentException("GPU count " + g.count() + " out of range");
            }
            List<Gpu> devices = new ArrayList<>(g.count());
            while (g.hasNext()) {
                g.next();
                long total = g.totalBytes();
                long peers = g.peers();
                byte[] uuid = new byte[Sbe.varLength(g.uuidLength(), d.limit(), 2, end, MAX_STRING_BYTES, "GPU uuid")];
                g.getUuid(uuid, 0, uuid.length);
                devices.add(new Gpu(Sbe.utf8(uuid, "GPU uuid"), total, peers));
            }
            WorkerInfoDecoder.LabelsDecoder l = d.labels();
            Sbe.checkGroup(l.actingBlockLength(), WorkerInfoDecoder.LabelsDecoder.sbeBlockLength(), "labels");
            if (l.count() > MAX_LABELS) {
                throw new IllegalArgumentException("at most " + MAX_LABELS + " labels, got " + l.count());
            }
            TreeMap<String, String> labels = new TreeMap<>();
            while (l.hasNext()) {
                l.next();
                byte[] key = new byte[Sbe.varLength(l.keyLength(), d.limit(), 2, end, MAX_STRING_BYTES, "label key")];
                l.getKey(key, 0, key.length);
                byte[] value = new byte[Sbe.varLength(l.valueLength(), d.limit(), 2, end, MAX_STRING_BYTES,
                        "label value")];
                l.getValue(value, 0, value.length);
                String k = Sbe.utf8(key, "label key");
                if (labels.put(k, Sbe.utf8(value, "label value")) != null) {
                    throw new IllegalArgumentException("label " + k + " appears twice");
                }
            }
            byte[] host = new byte[Sbe.varLength(d.hostNameLength(), d.limit(), 2, end, MAX_STRING_BYTES, "host name")];
            d.getHostName(host, 0, host.length);
            Sbe.expectEnd(d.limit(), end, "WorkerInfo");
            WorkerInfo info = new WorkerInfo(Sbe.utf8(host, "host name"), labels, cores, devices);
            if (!Arrays.equals(info.encode(), bytes)) {
                throw new IllegalArgumentException("not the stable encoding of a WorkerInfo: labels out of key order");
            }
            return info;
        } catch (IndexOutOfBoundsException e) {
            throw new IllegalArgumentException("truncated WorkerInfo: " + bytes.length + " bytes", e);
        }
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
