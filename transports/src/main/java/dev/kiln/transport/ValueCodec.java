package dev.kiln.transport;

import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import org.apache.fory.Fory;
import org.apache.fory.ThreadSafeFory;
import org.apache.fory.config.Language;
import org.apache.fory.exception.ForyException;
import org.apache.fory.logging.LogLevel;
import org.apache.fory.logging.LoggerFactory;
import org.apache.fory.serializer.ObjectSerializer;

import java.io.Externalizable;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Reader;
import java.io.Writer;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Reference;
import java.lang.reflect.Modifier;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.Executor;
import java.util.concurrent.Future;
import java.util.concurrent.Phaser;
import java.util.concurrent.Semaphore;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Writes a channel value into a region of memory and reads it back, for channels whose
 * writer and readers live in different processes.
 *
 * <p>Natively encoded: {@code null}, the boxed primitives ({@link Boolean}, {@link Byte},
 * {@link Short}, {@link Character}, {@link Integer}, {@link Long}, {@link Float}, {@link Double}),
 * {@link String} (UTF-8), {@code byte[]}, {@link Tensor} (dtype, shape and the raw data, copied
 * once; decoded as a zero-copy {@link Tensor#view} of the region), {@link RemoteError}, and
 * {@code Object[]} (exactly that class) whose elements are encodable, recursively up to
 * {@value #MAX_DEPTH} levels; it is decoded as a new {@code Object[]} whose tensors are views of the
 * region too. Every other value goes through Apache Fory with class registration required: what Fory
 * knows without registration (every primitive array, arrays of strings and boxed primitives, the JDK's
 * lists, maps, sets, {@code Optional}s, {@code BigDecimal}, {@code java.time} values, ...) crosses as it
 * is; any other class (the user's records, enums and classes, and arrays of them) only once
 * {@link #register}ed in every process that reads or writes it. A reader never instantiates a class
 * nobody registered, and never runs Java deserialization: a registered class is written field by field,
 * and its {@code readObject}, {@code readExternal} and {@code readResolve} are never called.
 *
 * <p>Fory is loaded on first use, when a value that is not native crosses (or {@link #refusal} asks it),
 * so a runtime whose values never leave their JVM never loads it.
 *
 * <p>Format: an int tag at offset 0, then the value's fields; a tensor's data starts at a
 * multiple of 64 bytes from the region's start. An {@code Object[]} is the tag, the element count,
 * a table of (offset, length) longs per element, then the elements; an element that is a tensor
 * or an array starts at a multiple of 64 bytes from the array's start (others at a multiple of 8),
 * so tensor data inside arrays is 64-byte aligned from the region's start as well. Native byte
 * order: both sides run on one host.
 *
 * <p>Thread-safety: {@link #register} before the codec is handed to channels; after that,
 * {@link #encode} and {@link #decode} may be called from any threads at once.
 */
public final class ValueCodec {

    private static final int NULL = 0;
    private static final int BOOLEAN = 1;
    private static final int BYTE = 2;
    private static final int SHORT = 3;
    private static final int CHAR = 4;
    private static final int INT = 5;
    private static final int LONG = 6;
    private static final int FLOAT = 7;
    private static final int DOUBLE = 8;
    private static final int STRING = 9;
    private static final int BYTES = 10;
    private static final int TENSOR = 11;
    private static final int ERROR = 12;
    /** Through Fory: a JDK type it knows, or a registered class. */
    private static final int FORY = 13;
    private static final int ARRAY = 14;

    /** How deep {@code Object[]} may nest; deeper (or an array that contains itself) is refused. */
    public static final int MAX_DEPTH = 32;

    /** The tag and an int: a scalar, string or byte array starts right after. */
    private static final long HEADER = 8;
    /** Tag, dtype, rank, padding, then the shape. */
    private static final long TENSOR_SHAPE = 16;
    private static final long TENSOR_ALIGN = 64;
    /** Tag, count, then an (offset, length) pair of longs per element. */
    private static final long ARRAY_TABLE = 8;

    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final DType[] DTYPES = DType.values();

    /**
     * Types whose values belong to the JVM that made them (a thread, a lock, a stream, a socket, native memory):
     * no codec can move them, so {@link #register} and {@link #refusal} refuse them and their subtypes.
     */
    private static final List<Class<?>> JVM_BOUND = List.of(Thread.class, Lock.class, ReadWriteLock.class,
            Condition.class, Semaphore.class, CountDownLatch.class, CyclicBarrier.class, Phaser.class, Executor.class,
            Future.class, InputStream.class, OutputStream.class, Reader.class, Writer.class,
            java.nio.channels.Channel.class, Socket.class, ServerSocket.class, ClassLoader.class, Process.class,
            ProcessHandle.class, MemorySegment.class, Arena.class, Reference.class);
    private static final Pattern FORY_UNREGISTERED = Pattern.compile("class (\\S+) is not registered");

    /** The registered classes, in order; guarded by {@code this}. */
    private final Set<Class<?>> registered = new LinkedHashSet<>();
    /** Built on first use ({@link #fory()}), so that a JVM whose values never cross never loads Fory. */
    private volatile ThreadSafeFory fory;

    /** Creates a codec with no registered classes. */
    public ValueCodec() {
    }

    /**
     * Allows values of exactly {@code type} (not its subclasses) to cross; an enum's constants with bodies of their
     * own come with it. Registration is by class name, so processes may register in different orders; the classes
     * of its fields must be registered too unless Fory knows them (JDK collections, arrays, boxed primitives,
     * strings). A class that needs no registration (natively encoded, or known to Fory, such as {@code int[]}), or
     * one registered already, is accepted and changes nothing. Does not load Fory.
     *
     * @param type a class
     * @throws IllegalArgumentException if values of {@code type} cannot leave their JVM (a thread, a lock, a stream,
     *                                  ...; see {@link #refusal})
     */
    public synchronized void register(Class<?> type) {
        String bound = jvmBound(type);
        if (bound != null) {
            throw new IllegalArgumentException("cannot register " + type.getName() + ": " + bound);
        }
        if (isNative(type) || !registered.add(type)) {
            return;
        }
        ThreadSafeFory f = fory;
        if (f != null) {
            apply(f, type);
        }
    }

    /** Fory, built with every class registered so far the first time a value needs it. */
    private ThreadSafeFory fory() {
        ThreadSafeFory f = fory;
        if (f == null) {
            synchronized (this) {
                f = fory;
                if (f == null) {
                    // Fory prints an INFO line per instance and per generated serializer; Kiln leaves stdout to the user.
                    LoggerFactory.setLogLevel(LogLevel.WARN_LEVEL);
                    f = Fory.builder()
                            .withLanguage(Language.JAVA)
                            .requireClassRegistration(true)
                            .withRefTracking(true)
                            .buildThreadSafeFory();
                    // Fory's JDK-compatible serializers would call readObject, readExternal or readResolve: user code
                    // run on the bytes of another process. A registered class with such hooks is read field by field.
                    f.setSerializerFactory((x, type) -> hasJavaSerializationHooks(type) && isRegistered(type)
                            ? new ObjectSerializer<>(x, type) : null);
                    for (Class<?> type : registered) {
                        apply(f, type);
                    }
                    fory = f;
                }
            }
        }
        return f;
    }

    /** Registers {@code type} with Fory unless Fory knows it already; field by field, whatever Java hooks it has. */
    private static void apply(ThreadSafeFory f, Class<?> type) {
        if (f.execute(x -> x.getClassResolver().isRegistered(type))) {
            return; // int[], ArrayList, ...: Fory's own, and registering them again would throw
        }
        f.register(type, type.getName());
        if (type.isEnum()) {
            for (Object constant : type.getEnumConstants()) {
                Class<?> body = constant.getClass();
                if (body != type && !f.execute(x -> x.getClassResolver().isRegistered(body))) {
                    f.register(body, body.getName()); // a constant with a body of its own is an anonymous subclass
                }
            }
        }
    }

    private synchronized boolean isRegistered(Class<?> type) {
        return registered.contains(type);
    }

    /** Whether the user's part of {@code type}'s hierarchy has Java serialization hooks (the JDK's are Fory's). */
    private static boolean hasJavaSerializationHooks(Class<?> type) {
        if (type.isEnum() || type.isRecord()) {
            return false;
        }
        if (Externalizable.class.isAssignableFrom(type)) {
            return true;
        }
        for (Class<?> c = type; c != null && c.getClassLoader() != null; c = c.getSuperclass()) {
            for (java.lang.reflect.Method m : c.getDeclaredMethods()) {
                String n = m.getName();
                if (!Modifier.isStatic(m.getModifiers()) && (n.equals("readObject") || n.equals("readObjectNoData")
                        || n.equals("readResolve") || n.equals("writeObject") || n.equals("writeReplace"))) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * Whether values of a declared type (a method's parameter or return type) can cross between processes, as far
     * as the type shows: loads Fory. Answers no (a reason) only when no value of that type could cross: a type bound
     * to its JVM (a thread, a lock, a stream, ...), or a class that is neither native, known to Fory nor registered,
     * with no registered subtype. An interface or open JDK type ({@code Object}, {@code List}, {@code Number}) may
     * hold anything, so it is left to the values.
     *
     * @param type a declared type
     * @return null if values of it can cross (or it cannot be told from the type); else why not and what to do
     */
    public String refusal(Class<?> type) {
        String bound = jvmBound(type);
        if (bound != null) {
            return bound;
        }
        Class<?> element = type;
        while (element.isArray()) {
            element = element.getComponentType();
        }
        if (element.isPrimitive() || isNative(element) || element == Void.class) {
            return null;
        }
        ThreadSafeFory f = fory();
        Class<?> known = element;
        if (f.execute(x -> x.getClassResolver().isRegistered(known))) {
            return null;
        }
        boolean jdk = element.getClassLoader() == null;
        boolean open = !Modifier.isFinal(element.getModifiers()) && !element.isEnum() && !element.isRecord();
        if (jdk && open) {
            return null; // an interface or an open JDK class: some values may cross, the values will tell
        }
        List<Class<?>> mine;
        synchronized (this) {
            mine = new ArrayList<>(registered);
        }
        for (Class<?> r : mine) {
            if (element.isAssignableFrom(r)) {
                return null;
            }
        }
        return element.getName() + " is not registered; register it for every JVM of the runtime: "
                + registrationCall(element.getName());
    }

    /**
     * @param className a class's binary name
     * @return the call that registers it with a Kiln runtime, e.g. {@code KilnOptions.defaults().register(Order.class)}
     */
    public static String registrationCall(String className) {
        String simple = className.substring(className.lastIndexOf('.') + 1).replace('$', '.');
        return "Kiln.local(KilnOptions.defaults().register(" + simple + ".class))";
    }

    private static String jvmBound(Class<?> type) {
        for (Class<?> b : JVM_BOUND) {
            if (b.isAssignableFrom(type)) {
                return "a " + b.getName() + " belongs to the JVM that made it and cannot cross to another; pass the"
                        + " data it holds or produces instead, or keep its users on one actor";
            }
        }
        return null;
    }

    /**
     * Writes {@code value} at the start of {@code target}. Nothing past the returned length is
     * touched; if the value does not fit, the content of {@code target} is unspecified.
     *
     * @param value  the value
     * @param target the region to write; align it to 64 bytes for aligned tensor data
     * @return the bytes written ({@code > 0}), or minus the bytes needed if {@code target} is too small
     * @throws IllegalArgumentException if the value's class (or an array element's) is neither native nor
     *                                  registered, Fory cannot serialize it (for example an unregistered field
     *                                  class), or arrays nest deeper than {@value #MAX_DEPTH} levels
     */
    public long encode(Object value, MemorySegment target) {
        return encode(value, target, 0);
    }

    private long encode(Object value, MemorySegment target, int depth) {
        return switch (value) {
            case null -> tag(target, NULL, HEADER);
            case Boolean b -> {
                long n = tag(target, BOOLEAN, HEADER + 1);
                if (n > 0) {
                    target.set(ValueLayout.JAVA_BYTE, HEADER, (byte) (b ? 1 : 0));
                }
                yield n;
            }
            case Byte b -> {
                long n = tag(target, BYTE, HEADER + 1);
                if (n > 0) {
                    target.set(ValueLayout.JAVA_BYTE, HEADER, b);
                }
                yield n;
            }
            case Short s -> {
                long n = tag(target, SHORT, HEADER + 2);
                if (n > 0) {
                    target.set(ValueLayout.JAVA_SHORT_UNALIGNED, HEADER, s);
                }
                yield n;
            }
            case Character c -> {
                long n = tag(target, CHAR, HEADER + 2);
                if (n > 0) {
                    target.set(ValueLayout.JAVA_CHAR_UNALIGNED, HEADER, c);
                }
                yield n;
            }
            case Integer i -> {
                long n = tag(target, INT, HEADER + 4);
                if (n > 0) {
                    target.set(I32, HEADER, i);
                }
                yield n;
            }
            case Long l -> {
                long n = tag(target, LONG, HEADER + 8);
                if (n > 0) {
                    target.set(I64, HEADER, l);
                }
                yield n;
            }
            case Float f -> {
                long n = tag(target, FLOAT, HEADER + 4);
                if (n > 0) {
                    target.set(I32, HEADER, Float.floatToRawIntBits(f));
                }
                yield n;
            }
            case Double d -> {
                long n = tag(target, DOUBLE, HEADER + 8);
                if (n > 0) {
                    target.set(I64, HEADER, Double.doubleToRawLongBits(d));
                }
                yield n;
            }
            case String s -> bytes(target, STRING, s.getBytes(StandardCharsets.UTF_8));
            case byte[] b -> bytes(target, BYTES, b);
            case Tensor t -> encodeTensor(t, target);
            case RemoteError e -> encodeError(e, target);
            case Object[] a when a.getClass() == Object[].class -> encodeArray(a, target, depth);
            default -> encodeFory(value, target);
        };
    }

    /**
     * Reads a value written by {@link #encode}.
     *
     * @param source exactly the bytes {@code encode} wrote
     * @return the value; a {@link Tensor}, also one inside an {@code Object[]}, is a view of {@code source},
     *         valid as long as that memory holds the encoded value; every other value is a new object
     * @throws IllegalArgumentException if {@code source} does not hold an encoded value, or holds a
     *                                  registered class this codec has not registered
     */
    public Object decode(MemorySegment source) {
        try {
            return decode(source, 0);
        } catch (IndexOutOfBoundsException | NegativeArraySizeException | ArithmeticException e) {
            // A length or count that points outside the source: corrupt bytes, not a codec bug.
            throw new IllegalArgumentException("not an encoded value: " + e.getMessage(), e);
        }
    }

    private Object decode(MemorySegment source, int depth) {
        int tag = source.get(I32, 0);
        return switch (tag) {
            case NULL -> null;
            case BOOLEAN -> source.get(ValueLayout.JAVA_BYTE, HEADER) != 0;
            case BYTE -> source.get(ValueLayout.JAVA_BYTE, HEADER);
            case SHORT -> source.get(ValueLayout.JAVA_SHORT_UNALIGNED, HEADER);
            case CHAR -> source.get(ValueLayout.JAVA_CHAR_UNALIGNED, HEADER);
            case INT -> source.get(I32, HEADER);
            case LONG -> source.get(I64, HEADER);
            case FLOAT -> Float.intBitsToFloat(source.get(I32, HEADER));
            case DOUBLE -> Double.longBitsToDouble(source.get(I64, HEADER));
            case STRING -> new String(bytes(source), StandardCharsets.UTF_8);
            case BYTES -> bytes(source);
            case TENSOR -> decodeTensor(source);
            case ERROR -> decodeError(source);
            case FORY -> decodeFory(source);
            case ARRAY -> decodeArray(source, depth);
            default -> throw new IllegalArgumentException("not an encoded value: tag " + tag);
        };
    }

    private static boolean isNative(Class<?> type) {
        return type == Boolean.class || type == Byte.class || type == Short.class || type == Character.class
                || type == Integer.class || type == Long.class || type == Float.class || type == Double.class
                || type == String.class || type == byte[].class || type == Tensor.class || type == RemoteError.class
                || type == Object[].class;
    }

    /** Writes the tag if {@code needed} bytes fit, and returns the {@link #encode} result. */
    private static long tag(MemorySegment target, int tag, long needed) {
        if (target.byteSize() < needed) {
            return -needed;
        }
        target.set(I32, 0, tag);
        return needed;
    }

    private static long bytes(MemorySegment target, int tag, byte[] bytes) {
        long n = tag(target, tag, HEADER + bytes.length);
        if (n > 0) {
            target.set(I32, 4, bytes.length);
            MemorySegment.copy(bytes, 0, target, ValueLayout.JAVA_BYTE, HEADER, bytes.length);
        }
        return n;
    }

    private static byte[] bytes(MemorySegment source) {
        int length = source.get(I32, 4);
        return source.asSlice(HEADER, length).toArray(ValueLayout.JAVA_BYTE);
    }

    /**
     * Where a tensor's data starts in its encoding: a writer that builds a tensor straight in a
     * channel slot ({@link Channel#claimTensor}) puts it there, and {@link #encode} then writes
     * only the header.
     *
     * @param rank the tensor's rank
     * @return the offset from the start of the encoded value, a multiple of 64
     */
    public static long tensorDataOffset(int rank) {
        long end = TENSOR_SHAPE + 8L * rank;
        return (end + TENSOR_ALIGN - 1) & -TENSOR_ALIGN;
    }

    private static long encodeTensor(Tensor t, MemorySegment target) {
        int rank = t.rank();
        long dataOffset = tensorDataOffset(rank);
        long n = tag(target, TENSOR, dataOffset + t.byteSize());
        if (n > 0) {
            target.set(I32, 4, t.dtype().ordinal());
            target.set(I32, 8, rank);
            for (int d = 0; d < rank; d++) {
                target.set(I64, TENSOR_SHAPE + 8L * d, t.dim(d));
            }
            if (t.data().address() != target.address() + dataOffset || !t.data().isNative() || !target.isNative()) {
                MemorySegment.copy(t.data(), 0, target, dataOffset, t.byteSize());
            } // else: built in place (Channel.claimTensor), nothing to copy
        }
        return n;
    }

    /**
     * Whether {@code view}, a tensor this codec decoded earlier from the same memory, still describes
     * the value encoded there now: same element type and shape, data at the same address. A channel
     * that hands each reader a view of a slot can then hand out the same {@link Tensor} object again
     * instead of decoding a new one, so reading allocates nothing. Reads the header only; allocates
     * nothing.
     *
     * @param source the start of the encoded value (a slot's data)
     * @param length the encoded value's length in bytes
     * @param view   the tensor decoded from this memory before
     * @return true if decoding {@code source} now would give a tensor equal to {@code view}, whose memory is
     *         still open
     */
    public static boolean stillDescribes(MemorySegment source, long length, Tensor view) {
        if (length < TENSOR_SHAPE || source.get(I32, 0) != TENSOR || source.get(I32, 4) != view.dtype().ordinal()) {
            return false;
        }
        int rank = source.get(I32, 8);
        if (rank != view.rank() || length != tensorDataOffset(rank) + view.byteSize()) {
            return false;
        }
        for (int d = 0; d < rank; d++) {
            if (source.get(I64, TENSOR_SHAPE + 8L * d) != view.dim(d)) {
                return false;
            }
        }
        // The place must match, and the view's memory must still be mapped: a slot that grew or moved to a new
        // mapping may have landed at the address of the old one, whose views are closed.
        return view.data().address() == source.address() + tensorDataOffset(rank) && view.data().scope().isAlive();
    }

    private static Tensor decodeTensor(MemorySegment source) {
        DType dtype = DTYPES[source.get(I32, 4)];
        int rank = source.get(I32, 8);
        if (rank < 0 || TENSOR_SHAPE + 8L * rank > source.byteSize()) {
            throw new IllegalArgumentException("not an encoded value: tensor rank " + rank + " in " + source.byteSize()
                    + " bytes");
        }
        long[] shape = new long[rank];
        for (int d = 0; d < rank; d++) {
            shape[d] = source.get(I64, TENSOR_SHAPE + 8L * d);
        }
        return Tensor.view(source.asSlice(tensorDataOffset(rank)), dtype, shape);
    }

    /** Tag, padding, sequence, then five strings as (int length or -1 for null, UTF-8 bytes). */
    private static long encodeError(RemoteError e, MemorySegment target) {
        byte[][] strings = {utf8(e.actor()), utf8(e.method()), utf8(e.exceptionClass()), utf8(e.message()),
                utf8(e.stackTrace())};
        long needed = 16;
        for (byte[] s : strings) {
            needed += 4 + (s == null ? 0 : s.length);
        }
        long n = tag(target, ERROR, needed);
        if (n > 0) {
            target.set(I64, 8, e.sequence());
            long at = 16;
            for (byte[] s : strings) {
                target.set(I32, at, s == null ? -1 : s.length);
                at += 4;
                if (s != null) {
                    MemorySegment.copy(s, 0, target, ValueLayout.JAVA_BYTE, at, s.length);
                    at += s.length;
                }
            }
        }
        return n;
    }

    private static RemoteError decodeError(MemorySegment source) {
        long sequence = source.get(I64, 8);
        String[] strings = new String[5];
        long at = 16;
        for (int i = 0; i < strings.length; i++) {
            int length = source.get(I32, at);
            at += 4;
            if (length >= 0) {
                strings[i] = new String(source.asSlice(at, length).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
                at += length;
            }
        }
        return new RemoteError(strings[0], strings[1], sequence, strings[2], strings[3], strings[4]);
    }

    private static byte[] utf8(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Writes the elements one after the other, each into the rest of {@code target}; once one does not
     * fit, the rest are only measured (into {@link MemorySegment#NULL}) so the result is the full size.
     */
    private long encodeArray(Object[] array, MemorySegment target, int depth) {
        if (depth >= MAX_DEPTH) {
            throw new IllegalArgumentException("cannot encode an Object[] nested more than " + MAX_DEPTH
                    + " levels deep (does an array contain itself?)");
        }
        long at = ARRAY_TABLE + 16L * array.length;
        boolean fits = target.byteSize() >= at;
        for (int i = 0; i < array.length; i++) {
            Object element = array[i];
            long align = element instanceof Tensor || element instanceof Object[] ? TENSOR_ALIGN : 8;
            at = (at + align - 1) & -align;
            fits &= at <= target.byteSize();
            long n = encode(element, fits ? target.asSlice(at) : MemorySegment.NULL, depth + 1);
            if (n < 0) {
                fits = false;
                n = -n;
            } else {
                target.set(I64, ARRAY_TABLE + 16L * i, at);
                target.set(I64, ARRAY_TABLE + 16L * i + 8, n);
            }
            at += n;
        }
        if (!fits) {
            return -at;
        }
        target.set(I32, 0, ARRAY);
        target.set(I32, 4, array.length);
        return at;
    }

    private Object[] decodeArray(MemorySegment source, int depth) {
        if (depth >= MAX_DEPTH) {
            throw new IllegalArgumentException("not an encoded value: Object[] nested more than " + MAX_DEPTH + " levels");
        }
        int count = source.get(I32, 4);
        long size = source.byteSize();
        if (count < 0 || ARRAY_TABLE + 16L * count > size) {
            throw new IllegalArgumentException("not an encoded value: Object[] of " + count + " elements in " + size
                    + " bytes");
        }
        long elements = ARRAY_TABLE + 16L * count;
        Object[] array = new Object[count];
        for (int i = 0; i < count; i++) {
            long offset = source.get(I64, ARRAY_TABLE + 16L * i);
            long length = source.get(I64, ARRAY_TABLE + 16L * i + 8);
            if (offset < elements || length < 0 || offset > size || length > size - offset) {
                throw new IllegalArgumentException("not an encoded value: element " + i + " at " + offset + " (+"
                        + length + ") outside the Object[] of " + size + " bytes");
            }
            array[i] = decode(source.asSlice(offset, length), depth + 1);
        }
        return array;
    }

    private long encodeFory(Object value, MemorySegment target) {
        Class<?> type = value.getClass();
        String bound = jvmBound(type);
        if (bound != null) {
            throw new IllegalArgumentException("cannot send a value of class " + type.getName() + " between processes: "
                    + bound);
        }
        byte[] bytes;
        try {
            bytes = fory().serialize(value);
        } catch (ForyException e) {
            String unregistered = unregisteredClass(e);
            if (unregistered != null && unregistered.equals(type.getName())) {
                throw new UnregisteredClassException(unregistered, "cannot send a value of class " + type.getName()
                        + " between processes: it is not registered; register it in every process of the graph with "
                        + "codec.register(" + type.getSimpleName() + ".class)", e);
            }
            if (unregistered != null) {
                throw new UnregisteredClassException(unregistered, "cannot serialize a value of class " + type.getName()
                        + ": it holds a value of class " + unregistered + ", which is not registered; register that"
                        + " class too", e);
            }
            throw new IllegalArgumentException("cannot serialize a value of class " + type.getName() + ": "
                    + e.getMessage(), e);
        }
        return bytes(target, FORY, bytes);
    }

    private Object decodeFory(MemorySegment source) {
        try {
            return fory().deserialize(bytes(source));
        } catch (ForyException e) {
            String unregistered = unregisteredClass(e);
            throw new UnregisteredClassException(unregistered, "cannot deserialize a value: " + firstLine(e)
                    + "; register its class in this process too with codec.register(...)", e);
        }
    }

    /** The class Fory refused as not registered, from its message (it has no accessor), or null. */
    private static String unregisteredClass(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            Matcher m = FORY_UNREGISTERED.matcher(String.valueOf(t.getMessage()));
            if (m.find()) {
                return m.group(1);
            }
        }
        return null;
    }

    private static String firstLine(Throwable e) {
        return String.valueOf(e.getMessage()).lines().findFirst().orElse("");
    }

    /**
     * A value (or a value inside it) whose class is not registered, so it cannot cross between processes.
     */
    public static final class UnregisteredClassException extends IllegalArgumentException {

        private static final long serialVersionUID = 1L;

        /** The binary name of the class to register, or null if the codec could not tell which. */
        private final String className;

        UnregisteredClassException(String className, String message, Throwable cause) {
            super(message, cause);
            this.className = className;
        }

        /** @return the binary name of the class to register, or null if the codec could not tell which */
        public String className() {
            return className;
        }
    }
}
