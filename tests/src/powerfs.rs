//! A FUSE pass-through that loses power: what a process writes is kept only in a volatile copy
//! until the process fsyncs it; [`PowerFs::power_cut`] throws away everything not fsynced, as a
//! machine losing power would. Nodes of a cluster test run with their data directories on it.
//!
//! Two trees back each mount: `volatile/` (what the processes see: reads, writes and namespace
//! changes go there) and `durable/` (what survives a cut). `fsync`/`fdatasync` of a file copies
//! its written ranges from the volatile tree to the durable one and fsyncs that. Namespace
//! changes (create, mkdir, rename, unlink, truncate) reach both trees at once: a simplification
//! (on a real file system they too may be lost without a directory fsync), so the test checks the
//! data path, which is where our two stores could disagree. Preallocation (`fallocate`) is
//! refused; the segment log and RocksDB both carry on without it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::UNIX_EPOCH;

use fuser::Errno;
use fuser::FileAttr;
use fuser::FileHandle;
use fuser::FileType;
use fuser::Filesystem;
use fuser::FopenFlags;
use fuser::Generation;
use fuser::INodeNo;
use fuser::LockOwner;
use fuser::OpenFlags;
use fuser::RenameFlags;
use fuser::ReplyAttr;
use fuser::ReplyCreate;
use fuser::ReplyData;
use fuser::ReplyDirectory;
use fuser::ReplyEmpty;
use fuser::ReplyEntry;
use fuser::ReplyOpen;
use fuser::ReplyWrite;
use fuser::Request;
use fuser::WriteFlags;

/// Attributes and names are never cached by the kernel: after a cut it must ask again.
const TTL: Duration = Duration::ZERO;

/// The state behind one mount.
struct State {
    durable: PathBuf,
    volatile: PathBuf,
    /// Inode → path relative to the roots (the root is inode 1, path "").
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Open files of the volatile tree.
    open: HashMap<u64, (u64, Arc<File>)>,
    next_fh: u64,
    /// Ranges written since the last fsync, per inode.
    dirty: HashMap<u64, Vec<(u64, u64)>>,
}

impl State {
    fn ino(&mut self, rel: &Path) -> u64 {
        if let Some(i) = self.inos.get(rel) {
            return *i;
        }
        let i = self.next_ino;
        self.next_ino += 1;
        self.inos.insert(rel.to_path_buf(), i);
        self.paths.insert(i, rel.to_path_buf());
        i
    }

    /// A new handle for `f`, an open file of inode `ino`.
    fn add_open(&mut self, ino: u64, f: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.open.insert(fh, (ino, Arc::new(f)));
        fh
    }

    fn rel(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.rel(parent)?.join(name))
    }

    fn attr(&self, ino: u64, rel: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(self.volatile.join(rel)).map_err(errno)?;
        let t = |s: i64| UNIX_EPOCH + Duration::from_secs(s.max(0) as u64);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: m.size(),
            blocks: m.blocks(),
            atime: t(m.atime()),
            mtime: t(m.mtime()),
            ctime: t(m.ctime()),
            crtime: t(m.ctime()),
            kind: if m.is_dir() { FileType::Directory } else { FileType::RegularFile },
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Copies the ranges of `ino` written since its last fsync to the durable tree, and fsyncs.
    fn sync(&mut self, ino: u64) -> io::Result<()> {
        let Some(rel) = self.paths.get(&ino).cloned() else { return Ok(()) };
        let ranges = self.dirty.remove(&ino).unwrap_or_default();
        let src = File::open(self.volatile.join(&rel))?;
        let dst =
            OpenOptions::new().write(true).create(true).truncate(false).open(self.durable.join(&rel))?;
        let mut buf = Vec::new();
        for (off, len) in ranges {
            buf.resize(len as usize, 0);
            let n = read_at_most(&src, &mut buf, off)?;
            dst.write_all_at(&buf[..n], off)?;
        }
        dst.sync_all()
    }

    /// Moves every interned path under `from` to under `to`.
    fn rename_paths(&mut self, from: &Path, to: &Path) {
        if let Some(old) = self.inos.remove(to) {
            self.paths.remove(&old);
            self.dirty.remove(&old);
        }
        let moved: Vec<(PathBuf, u64)> =
            self.inos.iter().filter(|(p, _)| p.starts_with(from)).map(|(p, i)| (p.clone(), *i)).collect();
        for (p, i) in moved {
            let Ok(rest) = p.strip_prefix(from) else { continue };
            let np = if rest.as_os_str().is_empty() { to.to_path_buf() } else { to.join(rest) };
            self.inos.remove(&p);
            self.inos.insert(np.clone(), i);
            self.paths.insert(i, np);
        }
    }
}

/// Reads up to `buf.len()` bytes at `off` (fewer at the end of the file).
fn read_at_most(f: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn errno(e: io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

/// The filesystem the FUSE session drives.
struct Fs(Arc<Mutex<State>>);

impl Fs {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Both trees: `f` on the volatile path, then on the durable one.
fn both(s: &State, rel: &Path, f: impl Fn(&Path) -> io::Result<()>) -> Result<(), Errno> {
    f(&s.volatile.join(rel)).map_err(errno)?;
    f(&s.durable.join(rel)).map_err(errno)
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.state();
        let r = s.child(parent, name).and_then(|rel| {
            std::fs::symlink_metadata(s.volatile.join(&rel)).map_err(errno)?;
            let ino = s.ino(&rel);
            s.attr(ino, &rel)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let s = self.state();
        match s.rel(ino).and_then(|rel| s.attr(ino.0, &rel)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let r = s.rel(ino).and_then(|rel| {
            if let Some(size) = size {
                both(&s, &rel, |p| OpenOptions::new().write(true).open(p)?.set_len(size))?;
                if let Some(d) = s.dirty.get_mut(&ino.0) {
                    d.retain(|(o, _)| *o < size);
                }
            }
            s.attr(ino.0, &rel)
        });
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.state();
        let r = s.child(parent, name).and_then(|rel| {
            both(&s, &rel, |p| std::fs::create_dir(p))?;
            let ino = s.ino(&rel);
            s.attr(ino, &rel)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let r = s.child(parent, name).and_then(|rel| {
            std::fs::remove_file(s.volatile.join(&rel)).map_err(errno)?;
            let _ = std::fs::remove_file(s.durable.join(&rel));
            if let Some(i) = s.inos.remove(&rel) {
                s.paths.remove(&i);
                s.dirty.remove(&i);
            }
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.state();
        let r = s.child(parent, name).and_then(|rel| {
            both(&s, &rel, |p| std::fs::remove_dir(p))?;
            if let Some(i) = s.inos.remove(&rel) {
                s.paths.remove(&i);
            }
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.state();
        let r = s.child(parent, name).and_then(|from| {
            let to = s.child(newparent, newname)?;
            std::fs::rename(s.volatile.join(&from), s.volatile.join(&to)).map_err(errno)?;
            if s.durable.join(&from).exists() {
                std::fs::rename(s.durable.join(&from), s.durable.join(&to)).map_err(errno)?;
            }
            s.rename_paths(&from, &to);
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.state();
        let r = s.rel(ino).and_then(|rel| {
            let f = OpenOptions::new().read(true).write(true).open(s.volatile.join(rel)).map_err(errno)?;
            Ok(s.add_open(ino.0, f))
        });
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.state();
        let r = s.child(parent, name).and_then(|rel| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(s.volatile.join(&rel))
                .map_err(errno)?;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(s.durable.join(&rel))
                .map_err(errno)?;
            let ino = s.ino(&rel);
            let fh = s.add_open(ino, f);
            Ok((s.attr(ino, &rel)?, fh))
        });
        match r {
            Ok((a, fh)) => reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let f = self.state().open.get(&fh.0).map(|(_, f)| f.clone());
        let Some(f) = f else { return reply.error(Errno::EBADF) };
        let mut buf = vec![0u8; size as usize];
        match read_at_most(&f, &mut buf, offset) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.state();
        let Some((ino, f)) = s.open.get(&fh.0).cloned() else { return reply.error(Errno::EBADF) };
        match f.write_all_at(data, offset) {
            Ok(()) => {
                s.dirty.entry(ino).or_default().push((offset, data.len() as u64));
                reply.written(data.len() as u32)
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().open.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.state().sync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let mut s = self.state();
        let rel = match s.rel(ino) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let rd = match std::fs::read_dir(s.volatile.join(&rel)) {
            Ok(rd) => rd,
            Err(e) => return reply.error(errno(e)),
        };
        let mut entries =
            vec![(ino.0, FileType::Directory, ".".into()), (1, FileType::Directory, "..".into())];
        for e in rd.flatten() {
            let kind = if e.file_type().is_ok_and(|t| t.is_dir()) {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            let name = e.file_name();
            let i = s.ino(&rel.join(&name));
            entries.push((i, kind, name));
        }
        for (k, (i, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(i), k as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EOPNOTSUPP);
    }
}

/// One mounted [`Fs`]; unmounted when dropped (lazily, if a process still holds it).
pub struct PowerFs {
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl PowerFs {
    /// Mounts a power-losing pass-through at `mountpoint` (created if missing), backed by
    /// `backing/volatile` and `backing/durable`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> anyhow::Result<PowerFs> {
        let (volatile, durable) = (backing.join("volatile"), backing.join("durable"));
        for d in [&volatile, &durable, &mountpoint.to_path_buf()] {
            std::fs::create_dir_all(d)?;
        }
        let mut st = State {
            durable,
            volatile,
            paths: HashMap::new(),
            inos: HashMap::new(),
            next_ino: 2,
            open: HashMap::new(),
            next_fh: 1,
            dirty: HashMap::new(),
        };
        st.paths.insert(1, PathBuf::new());
        st.inos.insert(PathBuf::new(), 1);
        let state = Arc::new(Mutex::new(st));
        let mut config = fuser::Config::default();
        config.mount_options = vec![fuser::MountOption::FSName("raftmq-powerfs".into())];
        let session = fuser::spawn_mount(Fs(state.clone()), mountpoint, &config)?;
        Ok(PowerFs { state, mountpoint: mountpoint.to_path_buf(), session: Some(session) })
    }

    /// The power fails: everything written and not fsynced is gone. Call it once every process
    /// using the mount is dead.
    pub fn power_cut(&self) -> anyhow::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.open.clear();
        s.dirty.clear();
        std::fs::remove_dir_all(&s.volatile)?;
        copy_tree(&s.durable, &s.volatile)?;
        Ok(())
    }

    /// Bytes written and not yet fsynced to files under `dir` (relative to the mount; "" for
    /// all): what a cut now would lose there.
    pub fn dirty_bytes(&self, dir: &str) -> u64 {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.dirty
            .iter()
            .filter(|(ino, _)| s.paths.get(ino).is_some_and(|p| p.starts_with(dir)))
            .flat_map(|(_, r)| r)
            .map(|(_, l)| *l)
            .sum()
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        if let Some(session) = self.session.take()
            && session.umount_and_join().is_err()
        {
            // Still busy (a process holds a file): detach it, the kernel finishes when released.
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.mountpoint).status();
        }
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}
